/**
 * 64-bit fields: the proto's uint64 sequence ids and versions reach the
 * rules through the codec exactly as the dispatcher decodes them (decimal
 * strings). A seeded property test draws values across the whole 64-bit
 * range; whatever attempt 1's worker sends, a later attempt can still
 * complete the task, and every answer matches an oracle of the documented
 * rules (docs/protocol.md, "64-bit fields").
 */
import { describe, expect, it } from 'vitest';
import type { Random } from '../../src/core/clock';
import { MAX_ATTEMPTS } from '../../src/core/task-fields';
import { ATTEMPT_VERSION_SPAN, MAX_WIRE_INTEGER } from '../../src/core/update-rules';
import type { UpdateAckOut } from '../../src/core/update';
import { decodeUpdate, encodeAck } from '../../src/protocol/codec';
import type { WireTaskState } from '../../src/protocol/wire';
import { U64_EDGES } from '../support/u64-arbitrary';
import { createHarness, seededRandom, submitAndAssign, type WorkerStream } from '../support/core-harness';

/** A uint64 drawn across the whole range: edges, then uniform bit length, then uniform within it. */
function draw64(rnd: Random): bigint {
  if (rnd() < 0.3) return U64_EDGES[Math.floor(rnd() * U64_EDGES.length)]!;
  const bits = BigInt(1 + Math.floor(rnd() * 64));
  const hi = BigInt(Math.floor(rnd() * 2 ** 32));
  const lo = BigInt(Math.floor(rnd() * 2 ** 32));
  return ((hi << 32n) | lo) & ((1n << bits) - 1n);
}

const SAFE = BigInt(MAX_WIRE_INTEGER);

interface State {
  nextSeq: bigint;
  version: bigint;
  assigned: bigint;
  /** Whether an update was accepted on this attempt (rule 3 re-acknowledges an identical resend of it). */
  accepted: boolean;
  /** The answer each consumed sequence id got. */
  answered: Map<bigint, { version: bigint; result: string; reason: string }>;
}

/** What docs/protocol.md says the answer is. */
function expected(seq: bigint, version: bigint, state: State): { result: string; reason: string; consumes: boolean } {
  if (seq < 1n || seq > SAFE) return { result: 'REJECTED', reason: 'INVALID_UPDATE', consumes: false };
  if (seq > state.nextSeq) return { result: 'REJECTED', reason: 'SEQUENCE_GAP', consumes: false };
  if (seq < state.nextSeq) {
    // A used id: the same update again gets its original answer; anything else is a regression.
    const prior = state.answered.get(seq);
    if (prior !== undefined && prior.version === version) return { result: prior.result === 'ACCEPTED' ? 'DUPLICATE' : prior.result, reason: prior.reason, consumes: false };
    return { result: 'REJECTED', reason: 'SEQUENCE_REGRESSION', consumes: false };
  }
  if (version < 1n || version > SAFE) return { result: 'REJECTED', reason: 'INVALID_UPDATE', consumes: true };
  // Every update here is the same RUNNING with no progress: one at the last accepted version is an identical resend.
  if (state.accepted && version === state.version) return { result: 'DUPLICATE', reason: '', consumes: true };
  if (version <= state.version) return { result: 'REJECTED', reason: 'STALE_VERSION', consumes: true };
  if (version > state.assigned + BigInt(ATTEMPT_VERSION_SPAN)) return { result: 'REJECTED', reason: 'INVALID_UPDATE', consumes: true };
  return { result: 'ACCEPTED', reason: '', consumes: true };
}

/** Sends one update the way the dispatcher receives it: 64-bit fields as decimal strings, through the codec. */
function sendWire(w: WorkerStream, fields: { taskId: string; attempt: number; status: WireTaskState }, seq: bigint, version: bigint): UpdateAckOut {
  const wire = { ...fields, sequenceId: seq.toString(), version: version.toString(), progressPermille: 0 };
  const ack = w.sendRaw(decodeUpdate(wire));
  // The ack echoes the sequence id exactly as it was sent, in range or not.
  expect(encodeAck(ack, wire.sequenceId).sequenceId).toBe(wire.sequenceId);
  return ack;
}

describe('versions and sequence ids across the whole 64-bit range', () => {
  it('keeps every task completable by a later attempt, and answers as the rules say (200 seeded runs)', () => {
    for (let run = 0; run < 200; run++) {
      const rnd = seededRandom(7_000 + run);
      const h = createHarness({ core: { backoff: { initialMs: 10, multiplier: 2, maxMs: 10, jitter: 0 } } });
      const w = h.open({ slots: 2 });
      const a = submitAndAssign(h, w, { maxAttempts: 2, attemptTimeoutMs: 600 });
      const task = h.engine.getTask(a.taskId)!;
      const state: State = { nextSeq: 1n, version: BigInt(a.version), assigned: BigInt(a.version), accepted: false, answered: new Map() };
      for (let step = 0; step < 40; step++) {
        const seq = rnd() < 0.7 ? state.nextSeq : draw64(rnd);
        const r = rnd();
        const version =
          r < 0.5 ? draw64(rnd) : r < 0.75 ? state.version + BigInt(1 + Math.floor(rnd() * 3)) : state.assigned + BigInt(ATTEMPT_VERSION_SPAN) + BigInt(Math.floor(rnd() * 3) - 1);
        const want = expected(seq, version, state);
        const ack = sendWire(w, { taskId: a.taskId, attempt: 1, status: 'RUNNING' }, seq, version);
        const context = `run ${run} step ${step}: seq ${seq} version ${version}`;
        expect({ result: ack.result, reason: ack.reason }, context).toEqual({ result: want.result, reason: want.reason });
        if (want.consumes) {
          state.answered.set(seq, { version, result: want.result, reason: want.reason });
          state.nextSeq += 1n;
        }
        if (want.result === 'ACCEPTED') {
          state.version = version;
          state.accepted = true;
        }
        expect(BigInt(task.version), context).toBe(state.version);
        expect(Number.isSafeInteger(task.version), context).toBe(true);
      }
      // A final update past the attempt's range is refused; the attempt then times out.
      const beyond = sendWire(w, { taskId: a.taskId, attempt: 1, status: 'COMPLETED' }, state.nextSeq, state.assigned + BigInt(ATTEMPT_VERSION_SPAN) + 1n);
      expect(beyond).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE' });
      h.advance(600);
      expect(h.takeCancels()).toMatchObject([{ taskId: a.taskId, attempt: 1, reason: 'ATTEMPT_TIMEOUT' }]);
      h.advance(10);
      const [second] = h.dispatch();
      expect(second, `run ${run}: attempt 2 was assigned`).toMatchObject({ taskId: a.taskId, attempt: 2 });
      expect(second!.version).toBeGreaterThan(Number(state.version));
      const done = w.complete({ taskId: a.taskId, attempt: 2 }, second!.version + 1);
      expect(done, `run ${run}`).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: second!.version + 1 });
    }
  });

  it(`leaves room for the last of ${MAX_ATTEMPTS} attempts even when each one's worker jumps to the top of its range`, () => {
    const h = createHarness({ core: { backoff: { initialMs: 1, multiplier: 1, maxMs: 1, jitter: 0 } } });
    let w = h.open({ slots: 1 });
    let a = submitAndAssign(h, w, { maxAttempts: MAX_ATTEMPTS, attemptTimeoutMs: 60_000 });
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
      const top = a.version + ATTEMPT_VERSION_SPAN;
      expect(w.running(a, top)).toMatchObject({ result: 'ACCEPTED', version: top });
      expect(w.fail(a, top + 1, { code: 2, reason: 'HANDLER_FAILED', message: 'again', retryable: true })).toMatchObject({ reason: 'INVALID_UPDATE' });
      // The stream ends: the lease is lost and the next attempt is queued at once.
      h.close(w);
      w = h.open({ slots: 1 });
      h.advance(1);
      const [assigned] = h.dispatch();
      expect(assigned).toMatchObject({ taskId: a.taskId, attempt: attempt + 1 });
      a = assigned!;
    }
    const top = a.version + ATTEMPT_VERSION_SPAN;
    expect(Number.isSafeInteger(top)).toBe(true);
    expect(w.complete(a, top)).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: top });
    expect(top).toBeLessThanOrEqual(MAX_WIRE_INTEGER);
  });

  it('keeps the bound the docs give: 1 + MAX_ATTEMPTS x (span + 2) fits in 2^53-1', () => {
    expect(1 + MAX_ATTEMPTS * (ATTEMPT_VERSION_SPAN + 2)).toBeLessThanOrEqual(MAX_WIRE_INTEGER);
  });
});
