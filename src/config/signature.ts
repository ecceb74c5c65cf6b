import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

/**
 * Detached ed25519 signatures for runtime documents (node:crypto only).
 *
 * A signed document starts with one line that carries the signature of the
 * bytes after it:
 *
 *   #zonal-signature ed25519 <keyId> <base64 signature>
 *   version: 43
 *   ...
 *
 * The line is a YAML comment, so a signed YAML file is still YAML; it is
 * removed before parsing, so the body may be JSON too. The signature travels
 * in the same text as the body because Nacos has no multi-key transaction:
 * a signature under a second dataId could arrive before or after its body
 * and fail half the updates. `keyId` is the first 16 hex digits of the
 * SHA-256 of the raw public key, so a verifier with several keys (rotation)
 * knows which one to use.
 */
export const SIGNATURE_PREFIX = '#zonal-signature ';

export interface SplitDocument {
  body: string;
  signature: { keyId: string; signature: Buffer } | undefined;
  /** The first line looked like a signature line but could not be read. */
  malformedSignature: boolean;
}

export function splitSignature(text: string): SplitDocument {
  if (!text.startsWith(SIGNATURE_PREFIX)) return { body: text, signature: undefined, malformedSignature: false };
  const newline = text.indexOf('\n');
  const line = (newline < 0 ? text : text.slice(0, newline)).replace(/\r$/, '');
  const body = newline < 0 ? '' : text.slice(newline + 1);
  const parts = line.slice(SIGNATURE_PREFIX.length).trim().split(/\s+/);
  const [algorithm, keyId, encoded] = parts;
  if (parts.length !== 3 || algorithm !== 'ed25519' || keyId === undefined || !/^[0-9a-f]{16}$/.test(keyId) || encoded === undefined) {
    return { body, signature: undefined, malformedSignature: true };
  }
  const signature = Buffer.from(encoded, 'base64');
  if (signature.length !== 64) return { body, signature: undefined, malformedSignature: true };
  return { body, signature: { keyId, signature }, malformedSignature: false };
}

export function keyIdOf(publicKey: crypto.KeyObject): string {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  // An ed25519 SPKI is a fixed 12-byte header and the 32-byte raw key.
  return crypto.createHash('sha256').update(der.subarray(der.length - 32)).digest('hex').slice(0, 16);
}

/** Signs `text` (an existing signature line is replaced) and returns the signed document. */
export function signDocument(text: string, privateKey: crypto.KeyObject): string {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError(`the signing key must be an ed25519 private key, got ${privateKey.asymmetricKeyType ?? 'unknown'}`);
  const { body } = splitSignature(text);
  const signature = crypto.sign(null, Buffer.from(body, 'utf8'), privateKey);
  return `${SIGNATURE_PREFIX}ed25519 ${keyIdOf(crypto.createPublicKey(privateKey))} ${signature.toString('base64')}\n${body}`;
}

/** The public keys documents are checked against, by key id. Empty: signatures are optional. */
export class PublicKeyRing {
  private readonly keys = new Map<string, crypto.KeyObject>();

  constructor(keys: readonly crypto.KeyObject[] = []) {
    for (const key of keys) {
      if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519') throw new TypeError('config public keys must be ed25519 public keys (PEM, SPKI)');
      this.keys.set(keyIdOf(key), key);
    }
  }

  /** Reads PEM files (one or more keys each). */
  static fromFiles(paths: readonly string[]): PublicKeyRing {
    const keys: crypto.KeyObject[] = [];
    for (const path of paths) {
      const pem = fs.readFileSync(path, 'utf8');
      const blocks = pem.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g);
      if (blocks === null) throw new TypeError(`${path} holds no PEM public key ("-----BEGIN PUBLIC KEY-----")`);
      for (const block of blocks) keys.push(crypto.createPublicKey(block));
    }
    return new PublicKeyRing(keys);
  }

  get size(): number {
    return this.keys.size;
  }

  ids(): string[] {
    return [...this.keys.keys()];
  }

  /**
   * The body to parse, or why the document is refused. With no keys
   * configured, a signature line is removed and not checked.
   */
  verify(text: string): { ok: true; body: string; keyId: string | undefined } | { ok: false; reason: string } {
    const split = splitSignature(text);
    if (this.keys.size === 0) return { ok: true, body: split.body, keyId: undefined };
    if (split.malformedSignature) return { ok: false, reason: `the first line is not a valid signature line ("${SIGNATURE_PREFIX}ed25519 <keyId> <base64>")` };
    if (split.signature === undefined) return { ok: false, reason: 'unsigned document refused: public keys are configured, so every document must be signed (zonal config sign)' };
    const key = this.keys.get(split.signature.keyId);
    if (key === undefined) return { ok: false, reason: `signed with key ${split.signature.keyId}, which is not among the configured public keys (${this.ids().join(', ')})` };
    if (!crypto.verify(null, Buffer.from(split.body, 'utf8'), key, split.signature.signature)) {
      return { ok: false, reason: `the signature by key ${split.signature.keyId} does not match the document (changed after signing?)` };
    }
    return { ok: true, body: split.body, keyId: split.signature.keyId };
  }
}
