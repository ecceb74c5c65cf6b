import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { TOKEN_PATTERN, tokenDigest } from '../security/token';
import { str, UsageError, type FlagSpec, type FlagValues } from './flags';

export const TOKEN_SUMMARY = 'Makes a bearer token (`zonal token new --out FILE`) or prints the tokenSha256 of one for the access policy (`zonal token hash --file FILE`).';

export const TOKEN_FLAGS: FlagSpec[] = [
  { name: 'out', env: 'ZONAL_TOKEN_OUT', type: 'string', default: '', description: 'new: write the token to this file (mode 0600; an existing file is never overwritten) instead of standard output.' },
  { name: 'file', env: 'ZONAL_TOKEN_FILE', type: 'string', default: '', description: 'hash: the token file to hash (its first line).' },
];

/**
 * `new`: 32 random bytes, base64url (43 characters), and its tokenSha256.
 * `hash`: the tokenSha256 of a token file, so the policy never holds the token.
 */
export function tokenCommand(values: FlagValues, positionals: string[]): void {
  const [action] = positionals;
  if (action === 'new') {
    const token = randomBytes(32).toString('base64url');
    const out = str(values, 'out');
    if (out !== '') {
      fs.writeFileSync(out, token + '\n', { mode: 0o600, flag: 'wx' });
      process.stdout.write(JSON.stringify({ tokenFile: out, tokenSha256: tokenDigest(token) }) + '\n');
    } else {
      process.stdout.write(JSON.stringify({ token, tokenSha256: tokenDigest(token) }) + '\n');
    }
    return;
  }
  if (action === 'hash') {
    const file = str(values, 'file');
    if (file === '') throw new UsageError('hash needs --file FILE');
    const token = (fs.readFileSync(file, 'utf8').split('\n')[0] ?? '').trim();
    if (!TOKEN_PATTERN.test(token)) throw new UsageError(`${file}: the first line must be a token of 16 to 4096 visible ASCII characters`);
    process.stdout.write(JSON.stringify({ tokenSha256: tokenDigest(token) }) + '\n');
    return;
  }
  throw new UsageError('zonal token new [--out FILE] | zonal token hash --file FILE');
}
