import { describe, expect, it } from 'vitest';
import { SequenceWindow } from '../../src/core/sequence-window';
import type { UpdateAckOut, WorkerUpdate } from '../../src/core/update';
import { createHarness, makeUpdate, submitAndAssign } from '../support/core-harness';

function upd(sequenceId: number, version = sequenceId + 2, progressPermille = 0): WorkerUpdate {
  return makeUpdate({ taskId: 't', attempt: 1, status: 'RUNNING', version, progressPermille }, sequenceId);
}

function ack(u: WorkerUpdate): UpdateAckOut {
  return { sequenceId: u.sequenceId, taskId: u.taskId, result: 'ACCEPTED', reason: '', message: '', state: 'RUNNING', version: u.version };
}

describe('SequenceWindow', () => {
  it('expects 1 first, then exactly one more each time', () => {
    const w = new SequenceWindow(8);
    expect(w.lastSequenceId).toBe(0);
    expect(w.check(upd(1))).toEqual({ kind: 'next' });
    w.record(upd(1), ack(upd(1)));
    expect(w.lastSequenceId).toBe(1);
    expect(w.check(upd(2))).toEqual({ kind: 'next' });
    w.record(upd(2), ack(upd(2)));
    expect(w.lastSequenceId).toBe(2);
  });

  it('reports a gap with the expected id and does not move', () => {
    const w = new SequenceWindow(8);
    expect(w.check(upd(2))).toEqual({ kind: 'gap', expected: 1 });
    w.record(upd(1), ack(upd(1)));
    expect(w.check(upd(5))).toEqual({ kind: 'gap', expected: 2 });
    expect(w.lastSequenceId).toBe(1);
  });

  it('answers an identical resend with the remembered ack', () => {
    const w = new SequenceWindow(8);
    const a = ack(upd(1));
    w.record(upd(1), a);
    expect(w.check(upd(1))).toEqual({ kind: 'resend', ack: a });
  });

  it('calls a reused id with different content a regression', () => {
    const w = new SequenceWindow(8);
    w.record(upd(1), ack(upd(1)));
    const verdict = w.check(upd(1, 3, 999));
    expect(verdict.kind).toBe('regression');
    expect(verdict.kind === 'regression' && verdict.message).toContain('already used for a different update');
  });

  it('forgets answers older than the window and calls them regressions', () => {
    const w = new SequenceWindow(2);
    for (let s = 1; s <= 3; s++) w.record(upd(s), ack(upd(s)));
    const old = w.check(upd(1));
    expect(old.kind).toBe('regression');
    expect(old.kind === 'regression' && old.message).toContain('too old to verify');
    expect(w.check(upd(2)).kind).toBe('resend');
    expect(w.check(upd(3)).kind).toBe('resend');
  });

  it('a window of 1 remembers only the last answer', () => {
    const w = new SequenceWindow(1);
    w.record(upd(1), ack(upd(1)));
    w.record(upd(2), ack(upd(2)));
    expect(w.check(upd(1)).kind).toBe('regression');
    expect(w.check(upd(2)).kind).toBe('resend');
  });
});

describe('sequence ids on an engine stream', () => {
  function setup(core = {}) {
    const h = createHarness({ core });
    const w = h.open({ slots: 4 });
    const a = submitAndAssign(h, w);
    return { h, w, a };
  }

  it('rejects a first update that is not 1 with SEQUENCE_GAP and applies nothing', () => {
    const { h, w, a } = setup();
    h.dirtyIds();
    const ack = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 2);
    expect(ack).toMatchObject({ sequenceId: 2, taskId: a.taskId, result: 'REJECTED', reason: 'SEQUENCE_GAP' });
    expect(ack.message).toContain('expected sequence_id 1, got 2');
    expect([a.task.state, a.task.version]).toEqual(['ASSIGNED', 2]);
    expect(h.dirtyIds()).toEqual([]);
    expect(w.nextSequenceId).toBe(1);
  });

  it('accepts 1, 2, 3 in order', () => {
    const { w, a } = setup();
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 1).result).toBe('ACCEPTED');
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 4 }, 2).result).toBe('ACCEPTED');
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'COMPLETED', version: 5 }, 3).result).toBe('ACCEPTED');
    expect(a.task.state).toBe('COMPLETED');
  });

  it('does not consume the id of a gap: the missing update is then accepted', () => {
    const { w, a } = setup();
    w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 1);
    const gap = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 5 }, 3);
    expect(gap).toMatchObject({ result: 'REJECTED', reason: 'SEQUENCE_GAP' });
    expect(gap.message).toContain('expected sequence_id 2, got 3');
    expect(a.task.version).toBe(3);
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 4 }, 2)).toMatchObject({ result: 'ACCEPTED', version: 4 });
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 5 }, 3)).toMatchObject({ result: 'ACCEPTED', version: 5 });
  });

  it('re-acknowledges a resent update as DUPLICATE without applying it again', () => {
    const { h, w, a } = setup();
    const first = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3, progressPermille: 10 }, 1);
    expect(first).toMatchObject({ result: 'ACCEPTED', state: 'RUNNING', version: 3 });
    w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 4, progressPermille: 20 }, 2);
    h.dirtyIds();
    const again = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3, progressPermille: 10 }, 1);
    expect(again).toEqual({ ...first, result: 'DUPLICATE' });
    expect([a.task.version, a.task.progressPermille]).toEqual([4, 20]);
    expect(h.dirtyIds()).toEqual([]);
    // The resend did not consume an id.
    expect(w.nextSequenceId).toBe(3);
  });

  it('re-acknowledges a resent COMPLETED as DUPLICATE; the task is not completed twice', () => {
    const { h, w, a } = setup();
    const done = w.send({ taskId: a.taskId, attempt: 1, status: 'COMPLETED', version: 3 }, 1);
    expect(done).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: 3 });
    h.dirtyIds();
    for (let i = 0; i < 3; i++) {
      expect(w.send({ taskId: a.taskId, attempt: 1, status: 'COMPLETED', version: 3 }, 1)).toMatchObject({
        sequenceId: 1,
        result: 'DUPLICATE',
        state: 'COMPLETED',
        version: 3,
      });
    }
    expect(h.dirtyIds()).toEqual([]);
  });

  it('answers a resend of a rejected update with the same rejection', () => {
    const { w, a } = setup();
    const first = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 2 }, 1);
    expect(first).toMatchObject({ result: 'REJECTED', reason: 'STALE_VERSION' });
    const again = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 2 }, 1);
    expect(again).toEqual(first);
  });

  it('rejects a reused id with different content as SEQUENCE_REGRESSION and applies nothing', () => {
    const { h, w, a } = setup();
    w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 1);
    w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 4 }, 2);
    h.dirtyIds();
    const ack = w.send({ taskId: a.taskId, attempt: 1, status: 'COMPLETED', version: 9 }, 1);
    expect(ack).toMatchObject({ sequenceId: 1, result: 'REJECTED', reason: 'SEQUENCE_REGRESSION' });
    expect(ack.message).toContain('already used for a different update');
    expect([a.task.state, a.task.version]).toEqual(['RUNNING', 4]);
    expect(h.dirtyIds()).toEqual([]);
    expect(w.nextSequenceId).toBe(3);
  });

  it('rejects an id that fell out of the window as SEQUENCE_REGRESSION', () => {
    const { w, a } = setup({ sequenceWindow: 2 });
    for (let s = 1; s <= 3; s++) w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: s + 2 }, s);
    const ack = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 1);
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'SEQUENCE_REGRESSION' });
    expect(ack.message).toContain('too old to verify');
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 5 }, 3).result).toBe('DUPLICATE');
  });

  it.each([0, -1, 1.5, Number.NaN, 2 ** 53, Number(2n ** 64n - 1n)])('rejects sequence_id %s as INVALID_UPDATE without consuming an id', (bad) => {
    const { w, a } = setup();
    const ack = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, bad);
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE', message: 'sequence_id must be >= 1 and at most 9007199254740991 (2^53-1); it was not consumed' });
    expect(a.task.version).toBe(2);
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 1).result).toBe('ACCEPTED');
  });

  it('consumes the id of an update rejected for its content (the next id is one more)', () => {
    const { w, a } = setup();
    const bad = w.send({ taskId: a.taskId, attempt: 1, status: 'PENDING', version: 3 }, 1);
    expect(bad).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE' });
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'PENDING', version: 3 }, 1)).toEqual(bad);
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 1).reason).toBe('SEQUENCE_REGRESSION');
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 2).result).toBe('ACCEPTED');
  });

  it('numbers each stream on its own: both start at 1', () => {
    const h = createHarness();
    const w1 = h.open({ slots: 1 });
    const w2 = h.open({ slots: 1 });
    h.submit();
    h.submit();
    const [a1, a2] = h.dispatch();
    expect([a1!.sessionId, a2!.sessionId]).toEqual([w1.id, w2.id]);
    expect(w1.send({ taskId: a1!.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 1).result).toBe('ACCEPTED');
    expect(w2.send({ taskId: a2!.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 1).result).toBe('ACCEPTED');
    expect(w2.send({ taskId: a2!.taskId, attempt: 1, status: 'RUNNING', version: 4 }, 3).reason).toBe('SEQUENCE_GAP');
  });

  it('checks the sequence before anything else: a gap is reported even for an invalid update', () => {
    const { w } = setup();
    const ack = w.send({ taskId: '', attempt: 0, status: 'BOGUS', version: 0 }, 7);
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'SEQUENCE_GAP', state: '', version: 0 });
  });
});
