import { createHash } from 'node:crypto';

/**
 * Bearer tokens: visible ASCII, 16 to 4096 characters (RFC 6750 b64token,
 * loosely). Apart from the policy parser, so the SDK's `require('zonal')`
 * loads neither yaml nor zod.
 */
export const TOKEN_PATTERN = /^[\x21-\x7e]{16,4096}$/;

/** SHA-256 of a token, hex: what the policy's `tokenSha256` holds (`zonal token hash` prints it). */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
