import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { keyIdOf, PublicKeyRing, SIGNATURE_PREFIX, signDocument } from '../../../src/config/signature';

function keyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

const DOC = 'version: 43\nkeepalive:\n  minIntervalMs: 700\nlogLevel: warn\n';

function expectRefused(ring: PublicKeyRing, text: string): string {
  const result = ring.verify(text);
  if (result.ok) throw new Error('the document was accepted');
  return result.reason;
}

describe('signDocument and PublicKeyRing.verify', () => {
  const signer = keyPair();
  const ring = new PublicKeyRing([signer.publicKey]);

  it('a signed document verifies and yields the body without the signature line', () => {
    const signed = signDocument(DOC, signer.privateKey);
    expect(signed.startsWith(`${SIGNATURE_PREFIX}ed25519 ${keyIdOf(signer.publicKey)} `)).toBe(true);
    expect(signed.endsWith(`\n${DOC}`)).toBe(true);
    expect(ring.verify(signed)).toEqual({ ok: true, body: DOC, keyId: keyIdOf(signer.publicKey) });
  });

  it('a signed YAML document is still YAML with the same content', () => {
    const signed = signDocument(DOC, signer.privateKey);
    expect(parseYaml(signed)).toEqual(parseYaml(DOC));
    expect(parseYaml(signed)).toEqual({ version: 43, keepalive: { minIntervalMs: 700 }, logLevel: 'warn' });
  });

  it('a JSON body can be signed too', () => {
    const json = '{"version": 7, "drainGraceMs": 100}';
    const result = ring.verify(signDocument(json, signer.privateKey));
    expect(result).toMatchObject({ ok: true, body: json });
  });

  it('changing one byte of the body after signing fails, naming the key', () => {
    const signed = signDocument(DOC, signer.privateKey);
    const tampered = signed.replace('minIntervalMs: 700', 'minIntervalMs: 800');
    expect(tampered).not.toBe(signed);
    expect(expectRefused(ring, tampered)).toBe(`the signature by key ${keyIdOf(signer.publicKey)} does not match the document (changed after signing?)`);
    // Appending a single byte is enough.
    expect(ring.verify(`${signed} `).ok).toBe(false);
  });

  it('a document signed by a key that is not in the ring fails, naming that key', () => {
    const stranger = keyPair();
    const reason = expectRefused(ring, signDocument(DOC, stranger.privateKey));
    expect(reason).toBe(`signed with key ${keyIdOf(stranger.publicKey)}, which is not among the configured public keys (${keyIdOf(signer.publicKey)})`);
  });

  it('an unsigned document is refused once keys are configured', () => {
    expect(expectRefused(ring, DOC)).toBe('unsigned document refused: public keys are configured, so every document must be signed (zonal config sign)');
  });

  it.each<[string, (signed: string) => string]>([
    ['an unknown algorithm', (s) => s.replace(' ed25519 ', ' rsa ')],
    ['a key id that is not 16 hex digits', (s) => s.replace(/ed25519 [0-9a-f]{16} /, 'ed25519 XYZ ')],
    ['a signature of the wrong length', (s) => s.replace(/ [A-Za-z0-9+/=]+\n/, ' AAAA\n')],
    ['a missing field', (s) => s.replace(/ [A-Za-z0-9+/=]+\n/, '\n')],
    ['an extra field', (s) => s.replace('\n', ' extra\n')],
  ])('a malformed signature line (%s) is refused', (_label, corrupt) => {
    const bad = corrupt(signDocument(DOC, signer.privateKey));
    expect(bad.startsWith(SIGNATURE_PREFIX)).toBe(true);
    expect(expectRefused(ring, bad)).toBe(`the first line is not a valid signature line ("${SIGNATURE_PREFIX}ed25519 <keyId> <base64>")`);
  });

  it('re-signing replaces the old signature line instead of adding a second one', () => {
    const other = keyPair();
    const first = signDocument(DOC, other.privateKey);
    const again = signDocument(first, signer.privateKey);
    expect(again.split('\n').filter((line) => line.startsWith(SIGNATURE_PREFIX))).toHaveLength(1);
    expect(again).toBe(signDocument(DOC, signer.privateKey));
    expect(ring.verify(again)).toEqual({ ok: true, body: DOC, keyId: keyIdOf(signer.publicKey) });
  });

  it('a signature line with CRLF line endings still verifies', () => {
    const crlf = DOC.replace(/\n/g, '\r\n');
    const signed = signDocument(crlf, signer.privateKey);
    const withCrlfHeader = signed.replace('\n', '\r\n');
    expect(ring.verify(withCrlfHeader)).toMatchObject({ ok: true, body: crlf });
  });

  it('refuses to sign with a key that is not an ed25519 private key', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => signDocument(DOC, ec.privateKey)).toThrow('the signing key must be an ed25519 private key, got ec');
  });
});

describe('PublicKeyRing with no keys', () => {
  const empty = new PublicKeyRing();

  it('accepts unsigned documents as they are', () => {
    expect(empty.size).toBe(0);
    expect(empty.verify(DOC)).toEqual({ ok: true, body: DOC, keyId: undefined });
  });

  it('accepts signed documents and strips the signature line without checking it', () => {
    const stranger = keyPair();
    const signed = signDocument(DOC, stranger.privateKey);
    expect(empty.verify(signed)).toEqual({ ok: true, body: DOC, keyId: undefined });
    expect(empty.verify(signed.replace('700', '800'))).toEqual({ ok: true, body: DOC.replace('700', '800'), keyId: undefined });
  });
});

describe('key rotation', () => {
  it('a ring with two keys accepts documents signed by either and refuses a third', () => {
    const oldKey = keyPair();
    const newKey = keyPair();
    const ring = new PublicKeyRing([oldKey.publicKey, newKey.publicKey]);
    expect(ring.size).toBe(2);
    expect(ring.ids().sort()).toEqual([keyIdOf(oldKey.publicKey), keyIdOf(newKey.publicKey)].sort());
    expect(ring.verify(signDocument(DOC, oldKey.privateKey))).toMatchObject({ ok: true, keyId: keyIdOf(oldKey.publicKey) });
    expect(ring.verify(signDocument(DOC, newKey.privateKey))).toMatchObject({ ok: true, keyId: keyIdOf(newKey.publicKey) });
    const third = keyPair();
    expect(expectRefused(ring, signDocument(DOC, third.privateKey))).toContain(`signed with key ${keyIdOf(third.publicKey)}`);
  });

  it('key ids are 16 hex digits, stable for a key and different between keys', () => {
    const a = keyPair();
    const b = keyPair();
    expect(keyIdOf(a.publicKey)).toMatch(/^[0-9a-f]{16}$/);
    expect(keyIdOf(createPublicKey(a.publicKey.export({ format: 'pem', type: 'spki' })))).toBe(keyIdOf(a.publicKey));
    expect(keyIdOf(a.publicKey)).not.toBe(keyIdOf(b.publicKey));
  });

  it('refuses a public key that is not ed25519', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => new PublicKeyRing([ec.publicKey])).toThrow('config public keys must be ed25519 public keys (PEM, SPKI)');
  });

  it('refuses a private key given as a public key', () => {
    expect(() => new PublicKeyRing([keyPair().privateKey])).toThrow('config public keys must be ed25519 public keys (PEM, SPKI)');
  });
});

describe('PublicKeyRing.fromFiles', () => {
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-keys-'));
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const pemOf = (key: KeyObject): string => key.export({ format: 'pem', type: 'spki' }).toString();

  it('reads a PEM file holding two keys, and both verify', () => {
    const a = keyPair();
    const b = keyPair();
    const file = path.join(dir, 'keys.pem');
    fs.writeFileSync(file, `# rotation: old key first\n${pemOf(a.publicKey)}\n${pemOf(b.publicKey)}`);
    const ring = PublicKeyRing.fromFiles([file]);
    expect(ring.size).toBe(2);
    expect(ring.verify(signDocument(DOC, a.privateKey))).toMatchObject({ ok: true, keyId: keyIdOf(a.publicKey) });
    expect(ring.verify(signDocument(DOC, b.privateKey))).toMatchObject({ ok: true, keyId: keyIdOf(b.publicKey) });
  });

  it('reads keys from several files', () => {
    const a = keyPair();
    const b = keyPair();
    fs.writeFileSync(path.join(dir, 'a.pem'), pemOf(a.publicKey));
    fs.writeFileSync(path.join(dir, 'b.pem'), pemOf(b.publicKey));
    const ring = PublicKeyRing.fromFiles([path.join(dir, 'a.pem'), path.join(dir, 'b.pem')]);
    expect(ring.ids().sort()).toEqual([keyIdOf(a.publicKey), keyIdOf(b.publicKey)].sort());
  });

  it('a file with no PEM public key gives an error naming the file', () => {
    const file = path.join(dir, 'empty.pem');
    fs.writeFileSync(file, 'not a key\n');
    expect(() => PublicKeyRing.fromFiles([file])).toThrow(`${file} holds no PEM public key ("-----BEGIN PUBLIC KEY-----")`);
  });

  it('a PEM file with an EC public key is refused', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const file = path.join(dir, 'ec.pem');
    fs.writeFileSync(file, pemOf(ec.publicKey));
    expect(() => PublicKeyRing.fromFiles([file])).toThrow('config public keys must be ed25519 public keys (PEM, SPKI)');
  });
});
