/**
 * Numbers the protocol states in three places (the .proto's comments,
 * docs/protocol.md and the code) must be one fact: this test reads the
 * proto and the doc and compares them with the constants the code enforces.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_SLOTS_PER_SESSION } from '../../src/core/options';
import { MAX_ATTEMPTS } from '../../src/core/task-fields';
import { ATTEMPT_VERSION_SPAN, MAX_WIRE_INTEGER } from '../../src/core/update-rules';

const root = path.resolve(__dirname, '..', '..');
const proto = readFileSync(path.join(root, 'proto/zonal/v1/dispatcher.proto'), 'utf8');
const doc = readFileSync(path.join(root, 'docs/protocol.md'), 'utf8');

/** Every `a..b` range written next to `word` in a text. */
function rangesNear(text: string, word: RegExp): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) if (word.test(line)) out.push(...(line.match(/\b\d+\.\.\d+\b/g) ?? []));
  return out;
}

describe('protocol facts agree across the proto, the docs and the code', () => {
  it(`slots: 1..${MAX_SLOTS_PER_SESSION} for Hello, 0..${MAX_SLOTS_PER_SESSION} for SetSlots`, () => {
    const hello = proto.slice(proto.indexOf('message Hello'), proto.indexOf('message SetSlots'));
    const setSlots = proto.slice(proto.indexOf('message SetSlots'), proto.indexOf('message TaskUpdate '));
    expect(rangesNear(hello, /\b1\.\.\d+/)).toEqual([`1..${MAX_SLOTS_PER_SESSION}`]);
    expect(rangesNear(setSlots, /\.\./)).toEqual([`0..${MAX_SLOTS_PER_SESSION}`]);
    expect(rangesNear(doc, /`Hello`/)).toEqual([`1..${MAX_SLOTS_PER_SESSION}`]);
    expect(rangesNear(doc, /`SetSlots`/)).toEqual([`0..${MAX_SLOTS_PER_SESSION}`]);
  });

  it('64-bit bounds: sequence ids and versions up to 2^53-1, an attempt\'s versions within 2^42, at most 1000 attempts', () => {
    expect(MAX_WIRE_INTEGER).toBe(2 ** 53 - 1);
    expect(ATTEMPT_VERSION_SPAN).toBe(2 ** 42);
    expect(MAX_ATTEMPTS).toBe(1000);
    expect(doc).toContain('1..2^53-1');
    expect(doc).toContain("Assignment's version + 2^42");
    expect(doc).toContain('1 + 1000 × (2^42 + 2) + 2 × give-backs, far under 2^53-1');
    expect(proto).toContain('At most 2^53-1');
    expect(proto).toContain("at most the Assignment's version + 2^42");
  });
});
