import { describe, expect, it } from 'vitest';
import { ConfigGate, MAX_DOCUMENT_BYTES, REFUSED_TEXTS_REMEMBERED } from '../../../src/config/config-gate';
import { MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_TOKENS } from '../../../src/config/document-shape';
import { DEFAULT_BASELINE, MAX_CONFIG_VERSION } from '../../../src/config/runtime-schema';
import { PublicKeyRing } from '../../../src/config/signature';

const openGate = (): ConfigGate => new ConfigGate(DEFAULT_BASELINE, new PublicKeyRing());

/** The issue's document: `{"version": 2, "x": ` + `[` x n + `]` x n + `}`. */
const deepFlow = (n: number): string => `{"version": 2, "x": ${'['.repeat(n)}${']'.repeat(n)}}`;

/**
 * The worst shapes that fit under the size limit, each the largest of its
 * kind. Every one must be decided in a few milliseconds without growing
 * memory (the figures are in docs/configuration.md).
 */
function worstShapes(): Record<string, string> {
  const fill = (unit: string, head = 'version: 2\nx: '): string => head + unit.repeat(Math.floor((MAX_DOCUMENT_BYTES - head.length - 2) / unit.length)) + '\n';
  const laughs = ['version: 2', 'a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]'];
  for (let i = 1; i < 10; i++) laughs.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
  const n = Math.floor((MAX_DOCUMENT_BYTES - 40) / 2);
  return {
    'flow nesting at the size limit': deepFlow(n),
    'block nesting (compact sequences)': fill('- '),
    'explicit keys (? ? ?)': fill('? ', 'version: 2\n'),
    'alias bomb (10 levels x 10 aliases)': `${laughs.join('\n')}\n`,
    'huge plain scalar': fill('x'),
    'huge quoted scalar': `version: 2\nx: "${'y'.repeat(MAX_DOCUMENT_BYTES - 20)}"\n`,
    'many keys': `version: 2\nslo:\n  pairs:\n${'    "a->b": { p99Ms: 1 }\n'.repeat(Math.floor((MAX_DOCUMENT_BYTES - 40) / 27))}`,
    'many flow items': fill('1,', 'version: 2\nx: ['),
    'deepest allowed nesting, many times': fill(`${'['.repeat(20)}${']'.repeat(20)},`, 'version: 2\nx: ['),
  };
}

describe('hostile documents', () => {
  it("the issue's 200,000-level document is refused every time, and the process lives", () => {
    const gate = openGate();
    const text = deepFlow(200_000);
    const first = gate.offer(text);
    expect(first).toMatchObject({ result: 'invalid', repeated: false });
    expect(first.reason).toMatch(/larger than the limit/);
    // The same text again (the file source reads at start and when its watcher is ready).
    expect(gate.offer(text)).toMatchObject({ result: 'invalid' });
    expect(gate.offer(Buffer.from(text))).toMatchObject({ result: 'invalid' });
  });

  it('deep nesting that fits the size limit is refused before the parser sees it, and never parsed again', () => {
    const gate = openGate();
    const text = deepFlow(5_000); // ~10 KB: the yaml package overflows its stack at ~1,000 levels
    expect(Buffer.byteLength(text)).toBeLessThan(MAX_DOCUMENT_BYTES);
    const first = gate.offer(text);
    expect(first).toEqual(expect.objectContaining({ result: 'invalid', reason: `nested more than ${MAX_DOCUMENT_DEPTH} levels deep`, repeated: false }));
    const again = gate.offer(text);
    expect(again).toEqual(expect.objectContaining({ result: 'invalid', reason: first.reason, repeated: true }));
    expect(gate.current.version).toBe(0);
    // Still works afterwards.
    expect(gate.offer('version: 3\n').result).toBe('applied');
  });

  it(`a document of more than ${MAX_DOCUMENT_TOKENS} tokens is refused before it is parsed (parsing costs ~4 µs a token)`, () => {
    const gate = openGate();
    const pairs = (n: number): string => `version: 2\nslo:\n  pairs:\n${Array.from({ length: n }, (_, i) => `    "a->b${i}": { p99Ms: 1 }\n`).join('')}`;
    expect(gate.offer(pairs(60)).result).toBe('applied');
    const many = gate.offer(pairs(200).replace('version: 2', 'version: 3'));
    expect(many).toMatchObject({ result: 'invalid', reason: expect.stringMatching(/^more than 1000 YAML tokens/) });
    expect(gate.current.version).toBe(2);
  });

  it('a refused text is remembered by hash, so a stale or invalid repeat is not parsed again; the memory is bounded', () => {
    const gate = openGate();
    expect(gate.offer('version: 5\n').result).toBe('applied');
    expect(gate.offer('version: 4\n')).toMatchObject({ result: 'stale', repeated: false });
    expect(gate.offer('version: 4\n')).toMatchObject({ result: 'stale', repeated: true });
    for (let i = 0; i < REFUSED_TEXTS_REMEMBERED; i++) gate.offer(`version: 1\n# ${i}\n`);
    // The oldest refusal was forgotten: decided afresh, with the same result.
    expect(gate.offer('version: 4\n')).toMatchObject({ result: 'stale', repeated: false });
  });

  for (const [name, text] of Object.entries(worstShapes())) {
    it(`worst shape: ${name} is decided quickly`, () => {
      const gate = openGate();
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_DOCUMENT_BYTES);
      const started = performance.now();
      const decision = gate.offer(text);
      const elapsedMs = performance.now() - started;
      expect(['invalid', 'applied']).toContain(decision.result);
      // The figure is ~1-20 ms here; the bound is generous for a loaded 2-core box.
      expect(elapsedMs).toBeLessThan(500);
    });
  }

  it('control characters other than tab, LF and CR are refused, in comments too', () => {
    const gate = openGate();
    for (const char of ['\u0000', '\u0007', '\u000b', '\u001b', '\u007f', '\u0085']) {
      const decision = gate.offer(`version: 2\n# note${char}\nlogLevel: warn\n`);
      expect(decision.result).toBe('invalid');
      expect(decision.reason).toMatch(new RegExp(`control character U\\+00${char.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')} at line 2, column 7`));
    }
    expect(gate.offer('version: 2\r\n\tlogLevel: warn\r\n'.replace('\t', '')).result).toBe('applied');
    expect(gate.offer('version: 3\nx:\t1\n').result).toBe('invalid'); // a tab is allowed by us, but not by the schema here
    expect(gate.current.version).toBe(2);
  });

  it('a NUL byte as raw bytes is refused too', () => {
    const gate = openGate();
    expect(gate.offer(Buffer.from('version: 2\n# a\u0000b\n')).result).toBe('invalid');
  });

  it('invalid UTF-8 is refused (never replaced by U+FFFD), and so is U+FFFD left by a lossy decoder', () => {
    const gate = openGate();
    const bytes = Buffer.concat([Buffer.from('version: 2\n# caf'), Buffer.from([0xc3, 0x28]), Buffer.from('\nlogLevel: warn\n')]);
    const strict = gate.offer(bytes);
    expect(strict).toMatchObject({ result: 'invalid', reason: 'not valid UTF-8 at byte 16' });
    // What Buffer#toString (the Nacos client) makes of the same bytes.
    const lossy = gate.offer(bytes.toString('utf8'));
    expect(lossy.result).toBe('invalid');
    expect(lossy.reason).toMatch(/^U\+FFFD \(the mark of invalid UTF-8/);
    expect(gate.current.version).toBe(0);
    // Valid multi-byte UTF-8 is fine.
    expect(gate.offer(Buffer.from('version: 2\n# café ✓ 🚀\n')).result).toBe('applied');
  });

  it(`versions above ${MAX_CONFIG_VERSION} are refused, so a slip cannot end all updates`, () => {
    const gate = openGate();
    const over = gate.offer(`version: ${Number.MAX_SAFE_INTEGER}\n`);
    expect(over.result).toBe('invalid');
    expect(over.reason).toMatch(/version must be at most 1000000000000000/);
    expect(gate.offer(`version: ${MAX_CONFIG_VERSION}\n`).result).toBe('applied');
  });
});
