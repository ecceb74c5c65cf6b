import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigGate, MAX_DOCUMENT_BYTES, type Decision } from '../../../src/config/config-gate';
import { baselineSettings, DEFAULT_BASELINE } from '../../../src/config/runtime-schema';
import { PublicKeyRing, signDocument } from '../../../src/config/signature';
import { seededRandom as mulberry32 } from '../../support/core-harness';

const openGate = (): ConfigGate => new ConfigGate(DEFAULT_BASELINE, new PublicKeyRing());
const doc = (version: number, extra = ''): string => `version: ${version}\n${extra}`;


function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Checks that a refusal left the gate as it was. */
function expectUnchanged(gate: ConfigGate, decision: Decision, before: { settings: unknown; text: string | undefined }): void {
  expect(decision.settings).toBe(before.settings);
  expect(decision.previous).toBe(before.settings);
  expect(gate.current).toBe(before.settings);
  expect(gate.currentText).toBe(before.text);
}

describe('ConfigGate', () => {
  it('starts on the baseline with no text in force', () => {
    const gate = openGate();
    expect(gate.current).toEqual(baselineSettings(DEFAULT_BASELINE));
    expect(gate.current.version).toBe(0);
    expect(gate.currentText).toBeUndefined();
  });

  it('applies a strictly newer version, and the decision carries the settings it replaced', () => {
    const gate = openGate();
    const baseline = gate.current;
    const first = gate.offer(doc(1, 'drainGraceMs: 100\n'));
    expect(first).toMatchObject({ result: 'applied', reason: '', version: 1 });
    expect(first.previous).toBe(baseline);
    expect(first.settings.core.drainGraceMs).toBe(100);
    expect(gate.current).toBe(first.settings);
    expect(gate.currentText).toBe(doc(1, 'drainGraceMs: 100\n'));

    const second = gate.offer(doc(5, 'drainGraceMs: 200\n'));
    expect(second).toMatchObject({ result: 'applied', version: 5 });
    expect(second.previous).toBe(first.settings);
    expect(second.previous.core.drainGraceMs).toBe(100);
    expect(gate.current.core.drainGraceMs).toBe(200);
  });

  it('accepts JSON as well as YAML', () => {
    const gate = openGate();
    expect(gate.offer('{"version": 3, "logLevel": "debug"}')).toMatchObject({ result: 'applied', version: 3 });
    expect(gate.current.logLevel).toBe('debug');
  });

  it('an equal version with different content is stale and changes nothing', () => {
    const gate = openGate();
    gate.offer(doc(4, 'drainGraceMs: 100\n'));
    const before = { settings: gate.current, text: gate.currentText };
    const decision = gate.offer(doc(4, 'drainGraceMs: 999\n'));
    expect(decision).toMatchObject({ result: 'stale', version: 4, reason: 'version 4 is not newer than version 4 in force' });
    expectUnchanged(gate, decision, before);
    expect(gate.current.core.drainGraceMs).toBe(100);
  });

  it('an older version is stale', () => {
    const gate = openGate();
    gate.offer(doc(10));
    const before = { settings: gate.current, text: gate.currentText };
    const decision = gate.offer(doc(9, 'logLevel: error\n'));
    expect(decision).toMatchObject({ result: 'stale', version: 9, reason: 'version 9 is not newer than version 10 in force' });
    expectUnchanged(gate, decision, before);
  });

  it('the byte-identical text redelivered is a duplicate', () => {
    const gate = openGate();
    gate.offer(doc(2, 'logLevel: warn\n'));
    const before = { settings: gate.current, text: gate.currentText };
    const decision = gate.offer(doc(2, 'logLevel: warn\n'));
    expect(decision).toMatchObject({ result: 'duplicate', version: 2, reason: 'version 2 is already in force' });
    expectUnchanged(gate, decision, before);
    // Not byte-identical (a trailing space): decided on its version, so stale.
    expect(gate.offer(`${doc(2, 'logLevel: warn\n')} `).result).toBe('stale');
  });

  it.each<[string, string | null | undefined]>([
    ['null', null],
    ['undefined', undefined],
    ['an empty string', ''],
    ['whitespace', '  \n\t\n'],
  ])('%s is empty and keeps the config in force', (_label, text) => {
    const gate = openGate();
    gate.offer(doc(3));
    const before = { settings: gate.current, text: gate.currentText };
    const decision = gate.offer(text);
    expect(decision).toMatchObject({ result: 'empty', version: undefined, reason: 'the document is missing or empty; the config in force stays' });
    expectUnchanged(gate, decision, before);
  });

  it('text that is not YAML is invalid', () => {
    const gate = openGate();
    gate.offer(doc(3));
    const before = { settings: gate.current, text: gate.currentText };
    const decision = gate.offer('version: 4\nkeepalive: [unclosed\n');
    expect(decision.result).toBe('invalid');
    expect(decision.reason).toMatch(/^not YAML or JSON: /);
    expectUnchanged(gate, decision, before);
  });

  it('a document that fails the schema or a range is invalid, with the reason and the version it claims', () => {
    const gate = openGate();
    gate.offer(doc(3));
    const before = { settings: gate.current, text: gate.currentText };
    const unknownKey = gate.offer(doc(4, 'keepalive:\n  lbIdleWindowMS: 30000\n'));
    expect(unknownKey).toMatchObject({ result: 'invalid', version: 4, reason: 'keepalive: Unrecognized key: "lbIdleWindowMS"' });
    expectUnchanged(gate, unknownKey, before);
    const range = gate.offer(doc(5, 'defaultMaxAttempts: 0\n'));
    expect(range).toMatchObject({ result: 'invalid', version: 5, reason: 'defaultMaxAttempts must be between 1 and 1000, got 0' });
    expectUnchanged(gate, range, before);
    expect(gate.offer('- 1\n- 2\n')).toMatchObject({ result: 'invalid', version: undefined });
  });

  it(`a document over ${MAX_DOCUMENT_BYTES} bytes is invalid`, () => {
    const gate = openGate();
    const big = `version: 1\n# ${'x'.repeat(MAX_DOCUMENT_BYTES)}\n`;
    const decision = gate.offer(big);
    expect(decision).toMatchObject({ result: 'invalid', reason: `the document is larger than the limit of ${MAX_DOCUMENT_BYTES} bytes` });
    expect(gate.current.version).toBe(0);
    expect(gate.currentText).toBeUndefined();
    // Just under the limit is fine.
    const fits = `version: 1\n#${'x'.repeat(MAX_DOCUMENT_BYTES - 20)}\n`;
    expect(Buffer.byteLength(fits)).toBeLessThanOrEqual(MAX_DOCUMENT_BYTES);
    expect(gate.offer(fits).result).toBe('applied');
  });

  it('the size limit counts bytes, not characters', () => {
    const gate = openGate();
    // 'é' is two bytes in UTF-8: fewer characters than the limit, more bytes.
    const text = `version: 1\n# ${'é'.repeat(MAX_DOCUMENT_BYTES / 2 + 10)}\n`;
    expect(text.length).toBeLessThan(MAX_DOCUMENT_BYTES);
    expect(gate.offer(text).result).toBe('invalid');
  });

  describe('with public keys', () => {
    const signer = generateKeyPairSync('ed25519');
    const stranger = generateKeyPairSync('ed25519');
    const signedGate = (): ConfigGate => new ConfigGate(DEFAULT_BASELINE, new PublicKeyRing([signer.publicKey]));

    it('applies a signed document', () => {
      const gate = signedGate();
      const text = signDocument(doc(1, 'logLevel: debug\n'), signer.privateKey);
      expect(gate.offer(text)).toMatchObject({ result: 'applied', version: 1 });
      expect(gate.current.logLevel).toBe('debug');
      expect(gate.currentText).toBe(text);
    });

    it('refuses unsigned, wrongly signed and tampered documents as bad_signature, keeping the config in force', () => {
      const gate = signedGate();
      gate.offer(signDocument(doc(1), signer.privateKey));
      const before = { settings: gate.current, text: gate.currentText };

      const unsigned = gate.offer(doc(2));
      expect(unsigned.result).toBe('bad_signature');
      expect(unsigned.reason).toMatch(/^unsigned document refused/);
      expect(unsigned.version).toBe(2);
      expectUnchanged(gate, unsigned, before);

      const foreign = gate.offer(signDocument(doc(3), stranger.privateKey));
      expect(foreign.result).toBe('bad_signature');
      expect(foreign.reason).toMatch(/^signed with key [0-9a-f]{16}, which is not among the configured public keys/);
      expectUnchanged(gate, foreign, before);

      const tampered = gate.offer(signDocument(doc(4, 'drainGraceMs: 1\n'), signer.privateKey).replace('drainGraceMs: 1', 'drainGraceMs: 2'));
      expect(tampered.result).toBe('bad_signature');
      expect(tampered.reason).toMatch(/does not match the document/);
      expectUnchanged(gate, tampered, before);
    });
  });

  it('versions pick the winner whatever the arrival order: 1..50 shuffled', () => {
    const random = mulberry32(0x5eed);
    const order = shuffled(
      Array.from({ length: 50 }, (_, i) => i + 1),
      random,
    );
    expect(order).not.toEqual([...order].sort((a, b) => a - b));

    const gate = openGate();
    const applied: number[] = [];
    let highest = 0;
    const expected: number[] = [];
    for (const version of order) {
      if (version > highest) {
        expected.push(version);
        highest = version;
      }
      const decision = gate.offer(doc(version, `drainGraceMs: ${version * 10}\n`));
      if (decision.result === 'applied') applied.push(version);
      else expect(decision.result).toBe('stale');
    }
    expect(expected.length).toBeGreaterThan(1);
    expect(applied).toEqual(expected);
    expect(gate.current.version).toBe(50);
    expect(gate.current.core.drainGraceMs).toBe(500);
    expect(gate.currentText).toBe(doc(50, 'drainGraceMs: 500\n'));
  });
});
