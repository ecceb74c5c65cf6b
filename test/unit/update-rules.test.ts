import { describe, expect, it } from 'vitest';
import { errorInfo, REASONS } from '../../src/errors';
import { createHarness, submitAndAssign, type CoreHarness, type WorkerStream } from '../support/core-harness';

function nonRetryable(message: string) {
  return { ...errorInfo('HANDLER_FAILED', message), retryable: false };
}

/** One worker holding one RUNNING task at version 3. */
function running(overrides = {}) {
  const h = createHarness({ core: { backoff: { initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0 } } });
  const w = h.open({ slots: 2 });
  const a = submitAndAssign(h, w, overrides);
  expect(w.running(a, 3, 100).result).toBe('ACCEPTED');
  h.dirtyIds();
  return { h, w, a, task: a.task };
}

function expectUntouched(h: CoreHarness, task: object, before: object) {
  expect({ ...task }).toEqual(before);
  expect(h.dirtyIds()).toEqual([]);
}

describe('field validation (INVALID_UPDATE)', () => {
  it.each([
    ['empty task id', { taskId: '' }, 'task_id is empty'],
    ['status PENDING', { status: 'PENDING' }, 'status PENDING is not one a worker may report'],
    ['status ASSIGNED', { status: 'ASSIGNED' }, 'status ASSIGNED is not one a worker may report'],
    ['unknown status', { status: 'DONE' }, 'status DONE is not one a worker may report'],
    ['attempt 0', { attempt: 0 }, 'attempt must be >= 1'],
    ['fractional attempt', { attempt: 1.5 }, 'attempt must be >= 1'],
    ['version 0', { version: 0 }, 'version must be >= 1'],
    ['negative version', { version: -4 }, 'version must be >= 1'],
    ['progress -1', { progressPermille: -1 }, 'progress_permille must be 0..1000'],
    ['progress 1001', { progressPermille: 1001 }, 'progress_permille must be 0..1000'],
    ['fractional progress', { progressPermille: 10.5 }, 'progress_permille must be 0..1000'],
    ['task id of 129 characters', { taskId: 'x'.repeat(129) }, 'task_id is longer than 128 characters'],
    ['result over 16 MiB', { status: 'COMPLETED', result: new Uint8Array(16 * 1024 * 1024 + 1) }, 'result is 16777217 bytes; at most 16777216'],
    ['error reason of 129 characters', { status: 'FAILED', error: { ...nonRetryable('x'), reason: 'R'.repeat(129) } }, 'error.reason is longer than 128 characters'],
    ['error message over 4096 characters', { status: 'FAILED', error: nonRetryable('m'.repeat(4097)) }, 'error.message is longer than 4096 characters'],
  ])('%s', (_name, patch, message) => {
    const { h, w, a, task } = running();
    const before = { ...task };
    const ack = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 4, ...patch });
    expect(ack.result).toBe('REJECTED');
    expect(ack.reason).toBe('INVALID_UPDATE');
    expect(ack.message).toContain(message);
    expectUntouched(h, task, before);
  });

  it('accepts progress at both ends of 0..1000', () => {
    const { w, a } = running();
    expect(w.running(a, 4, 0).result).toBe('ACCEPTED');
    expect(w.running(a, 5, 1000).result).toBe('ACCEPTED');
  });
});

describe('large results are remembered by their hash', () => {
  it('a resend of a COMPLETED update with a large result is still a DUPLICATE, a different result of the same size is refused', () => {
    const { h, w, a } = running();
    const result = new Uint8Array(100_000).fill(7);
    const first = w.send({ taskId: a.taskId, attempt: 1, status: 'COMPLETED', version: 4, result });
    expect(first.result).toBe('ACCEPTED');
    const again = w.send({ taskId: a.taskId, attempt: 1, status: 'COMPLETED', version: 4, result: new Uint8Array(100_000).fill(7) }, first.sequenceId);
    expect(again.result).toBe('DUPLICATE');
    const changed = new Uint8Array(100_000).fill(7);
    changed[99_999] = 8;
    const other = w.send({ taskId: a.taskId, attempt: 1, status: 'COMPLETED', version: 4, result: changed }, first.sequenceId);
    expect(other).toMatchObject({ result: 'REJECTED', reason: 'SEQUENCE_REGRESSION' });
    expect(h.dirtyIds()).toEqual([a.taskId]);
  });
});

describe('version rule', () => {
  it.each([3, 2, 1])('rejects version %i at or below the current 3 as STALE_VERSION', (version) => {
    const { h, w, a, task } = running();
    const before = { ...task };
    const ack = w.running(a, version, 700);
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'STALE_VERSION', state: 'RUNNING', version: 3 });
    expect(ack.message).toBe(`version ${version} is at or below the task's version 3`);
    expectUntouched(h, task, before);
  });

  it('rejects a stale COMPLETED, leaving the task running', () => {
    const { h, w, a, task } = running();
    const before = { ...task };
    expect(w.complete(a, 3)).toMatchObject({ result: 'REJECTED', reason: 'STALE_VERSION' });
    expectUntouched(h, task, before);
    expect(w.complete(a, 4)).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: 4 });
  });

  it('accepts any jump upwards and takes the worker version as is', () => {
    const { w, a, task } = running();
    expect(w.running(a, 1000, 5)).toMatchObject({ result: 'ACCEPTED', version: 1000 });
    expect(task.version).toBe(1000);
    expect(w.running(a, 999)).toMatchObject({ result: 'REJECTED', reason: 'STALE_VERSION', version: 1000 });
  });

  it('a rejected STALE_VERSION is consumed: the stream continues with the next id', () => {
    const { w, a } = running();
    const seqBefore = w.nextSequenceId;
    w.running(a, 2);
    expect(w.nextSequenceId).toBe(seqBefore + 1);
  });
});

describe('duplicates', () => {
  it('re-acknowledges an identical RUNNING resent under a new sequence id as DUPLICATE', () => {
    const { h, w, a, task } = running();
    const first = w.running(a, 4, 250);
    expect(first.result).toBe('ACCEPTED');
    h.dirtyIds();
    const before = { ...task };
    const again = w.running(a, 4, 250);
    expect(again).toEqual({ ...first, sequenceId: first.sequenceId + 1, result: 'DUPLICATE' });
    expectUntouched(h, task, before);
  });

  it('a resend that differs in progress is not a duplicate but a stale version', () => {
    const { w, a } = running();
    w.running(a, 4, 250);
    expect(w.running(a, 4, 260)).toMatchObject({ result: 'REJECTED', reason: 'STALE_VERSION' });
  });

  it('re-acknowledges an identical COMPLETED under a new sequence id; it is not applied twice', () => {
    const { h, w, a, task } = running();
    const result = new Uint8Array([1, 2, 3]);
    const first = w.complete(a, 4, result);
    expect(first).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: 4 });
    h.dirtyIds();
    const before = { ...task };
    const again = w.complete(a, 4, new Uint8Array([1, 2, 3]));
    expect(again).toMatchObject({ result: 'DUPLICATE', state: 'COMPLETED', version: 4, sequenceId: first.sequenceId + 1 });
    expectUntouched(h, task, before);
  });

  it('a COMPLETED resend with a different result is refused as TERMINAL', () => {
    const { w, a, task } = running();
    w.complete(a, 4, new Uint8Array([1]));
    expect(w.complete(a, 4, new Uint8Array([2]))).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL', state: 'COMPLETED', version: 4 });
    expect(task.result).toEqual(new Uint8Array([1]));
  });

  it('re-acknowledges an identical retryable FAILED; the task is retried only once', () => {
    const { h, w, a, task } = running({ maxAttempts: 5 });
    const error = { ...errorInfo('HANDLER_FAILED', 'flaky'), retryable: true };
    const first = w.fail(a, 4, error);
    expect(first).toMatchObject({ result: 'ACCEPTED', state: 'PENDING', version: 5 });
    expect(task.attempt).toBe(2);
    h.dirtyIds();
    const again = w.fail(a, 4, { ...error });
    expect(again).toMatchObject({ result: 'DUPLICATE', state: 'PENDING', version: 5 });
    expect([task.attempt, task.version]).toEqual([2, 5]);
    expect(h.dirtyIds()).toEqual([]);
  });
});

describe('worker failures', () => {
  it('a non-retryable FAILED ends the task FAILED with the worker error', () => {
    const { w, a, task } = running({ maxAttempts: 5 });
    expect(w.fail(a, 4, nonRetryable('bad input'))).toMatchObject({ result: 'ACCEPTED', state: 'FAILED', version: 4 });
    expect(task.error).toEqual({ code: REASONS.HANDLER_FAILED.code, reason: 'HANDLER_FAILED', message: 'bad input', retryable: false });
    expect(task.attempt).toBe(1);
  });

  it('a retryable FAILED re-queues attempt+1 after backoff', () => {
    const { h, w, a, task } = running({ maxAttempts: 3 });
    const now = h.now;
    expect(w.fail(a, 4, { ...errorInfo('HANDLER_FAILED', 'flaky'), retryable: true })).toMatchObject({ state: 'PENDING', version: 5 });
    expect([task.state, task.attempt, task.sessionId, task.notBeforeMs]).toEqual(['PENDING', 2, '', now + 1000]);
    expect(task.error?.message).toBe('flaky');
    expect(h.dispatch()).toEqual([]);
    h.advance(999);
    expect(h.dispatch()).toEqual([]);
    h.advance(1);
    expect(h.dispatch()).toMatchObject([{ taskId: a.taskId, sessionId: w.id, attempt: 2, version: 6 }]);
  });

  it('FAILED without an error counts as a retryable HANDLER_FAILED', () => {
    const { w, a, task } = running({ maxAttempts: 2 });
    expect(w.fail(a, 4, null)).toMatchObject({ result: 'ACCEPTED', state: 'PENDING' });
    expect(task.error).toMatchObject({ reason: 'HANDLER_FAILED', retryable: true, message: 'the worker reported FAILED without an error' });
  });

  it('a retryable FAILED on the last attempt ends FAILED and says so', () => {
    const { w, a, task } = running({ maxAttempts: 1 });
    expect(w.fail(a, 4, { ...errorInfo('HANDLER_FAILED', 'flaky'), retryable: true })).toMatchObject({
      result: 'ACCEPTED',
      state: 'FAILED',
      version: 5,
    });
    expect(task.error?.message).toBe('flaky (gave up after 1 of 1 attempts)');
  });

  it('a final update frees the slot for the next task', () => {
    const h = createHarness();
    const w = h.open({ slots: 1 });
    const a = submitAndAssign(h, w);
    const t2 = h.submit();
    expect(h.dispatch()).toEqual([]);
    w.complete(a, 3);
    expect(h.dispatch()).toMatchObject([{ taskId: t2.id, sessionId: w.id }]);
  });
});

describe('INVALID_TRANSITION', () => {
  it('a worker may not report CANCELLED unless told to cancel', () => {
    const { h, w, a, task } = running();
    const before = { ...task };
    const ack = w.cancelled(a, 4);
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'INVALID_TRANSITION', state: 'RUNNING', version: 3 });
    expectUntouched(h, task, before);
    expect(w.heldCount).toBe(1);
  });
});

describe('terminal lock (TERMINAL)', () => {
  it.each([
    ['RUNNING', 5],
    ['COMPLETED', 5],
    ['FAILED', 5],
    ['RUNNING', 100],
  ])('after COMPLETED, a new %s at version %i is refused and the version stays locked', (status, version) => {
    const { h, w, a, task } = running();
    w.complete(a, 4);
    h.dirtyIds();
    const before = { ...task };
    const ack = w.send({ taskId: a.taskId, attempt: 1, status, version, error: status === 'FAILED' ? nonRetryable('x') : null });
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL', state: 'COMPLETED', version: 4 });
    expect(ack.message).toBe('task is COMPLETED; its version 4 is locked');
    expectUntouched(h, task, before);
  });

  it('a worker that did not hold a finished task is also told TERMINAL', () => {
    const { h, w, a } = running();
    w.complete(a, 4);
    const other = h.open();
    expect(other.running(a, 5)).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL', state: 'COMPLETED', version: 4 });
  });
});

describe('fencing', () => {
  function leaseLost() {
    const h = createHarness();
    const w1 = h.open({ slots: 1 });
    const a = submitAndAssign(h, w1);
    expect(w1.running(a, 3).result).toBe('ACCEPTED');
    h.close(w1, 'IDLE');
    const w2 = h.open({ slots: 1 });
    const [b] = h.dispatch();
    expect(b).toMatchObject({ taskId: a.taskId, sessionId: w2.id, attempt: 2, version: 5 });
    expect(w2.running(b!, 6).result).toBe('ACCEPTED');
    h.dirtyIds();
    return { h, w1, w2, a, b: b!, task: a.task };
  }

  it.each(['RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'])(
    'after lease loss and re-assignment, the old session gets FENCED for %s and the task is not touched',
    (status) => {
      const { h, w1, task } = leaseLost();
      const before = { ...task };
      for (const version of [4, 7, 50]) {
        const ack = w1.send({ taskId: task.id, attempt: 1, status, version });
        expect(ack).toMatchObject({ result: 'REJECTED', reason: 'FENCED', state: 'RUNNING', version: 6 });
        expect(ack.message).toBe('attempt 1 was taken away; attempt 2 is current');
      }
      expectUntouched(h, task, before);
    },
  );

  it('after lease loss, the old worker reconnecting as a new session is FENCED for the old attempt and NOT_HELD for the new one', () => {
    const { h, task } = leaseLost();
    const before = { ...task };
    const back = h.open({ workerId: 'worker-1' });
    expect(back.running({ taskId: task.id, attempt: 1 }, 9)).toMatchObject({ result: 'REJECTED', reason: 'FENCED' });
    const stolen = back.running({ taskId: task.id, attempt: 2 }, 9);
    expect(stolen).toMatchObject({ result: 'REJECTED', reason: 'NOT_HELD', state: 'RUNNING', version: 6 });
    expect(stolen.message).toBe(`task ${task.id} attempt 2 is not held by this session`);
    expectUntouched(h, task, before);
  });

  it('after lease loss the re-queued (still PENDING) task cannot be updated by the old attempt', () => {
    const h = createHarness();
    const w1 = h.open({ slots: 1 });
    const a = submitAndAssign(h, w1);
    h.close(w1);
    h.dirtyIds();
    const before = { ...a.task };
    expect(w1.complete(a, 10)).toMatchObject({ result: 'REJECTED', reason: 'FENCED', state: 'PENDING', version: 3 });
    expectUntouched(h, a.task, before);
  });

  it('the new holder is unaffected by the fenced worker and completes normally', () => {
    const { w1, w2, b, task } = leaseLost();
    w1.complete({ taskId: task.id, attempt: 1 }, 100);
    expect(w2.complete(b, 7)).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: 7 });
  });

  it('after an attempt timeout, the timed-out worker is FENCED and its slot stays taken until it reports the attempt over', () => {
    const h = createHarness({ core: { backoff: { initialMs: 0, multiplier: 2, maxMs: 0, jitter: 0 } } });
    const w1 = h.open({ slots: 1 });
    const a = submitAndAssign(h, w1, { attemptTimeoutMs: 1000 });
    w1.running(a, 3);
    const w2 = h.open({ slots: 1 });
    h.advance(1000);
    expect(h.takeCancels()).toEqual([{ sessionId: w1.id, taskId: a.taskId, attempt: 1, reason: 'ATTEMPT_TIMEOUT' }]);
    const [b] = h.dispatch();
    expect(b).toMatchObject({ sessionId: w2.id, attempt: 2, version: 5 });
    h.dirtyIds();
    const before = { ...a.task };

    const progress = w1.running(a, 4, 900);
    expect(progress).toMatchObject({ result: 'REJECTED', reason: 'FENCED', state: 'ASSIGNED', version: 5 });
    expect(progress.message).toBe('attempt 1 was taken away; attempt 2 is current');
    expect(w1.heldCount).toBe(1);
    const t2 = h.submit();
    expect(h.dispatch()).toEqual([]);

    const over = w1.complete(a, 5);
    expect(over).toMatchObject({ result: 'REJECTED', reason: 'FENCED' });
    expect(over.message).toBe('attempt 1 was taken away; attempt 2 is current; slot released');
    expect(w1.heldCount).toBe(0);
    expect({ ...a.task }).toEqual(before);
    expect(h.dispatch()).toMatchObject([{ taskId: t2.id, sessionId: w1.id }]);

    // The slot is released once only; later updates for the old attempt are still fenced.
    expect(w1.complete(a, 6)).toMatchObject({ result: 'REJECTED', reason: 'FENCED' });
    expect(w1.heldCount).toBe(1);
  });

  it('the holder of the current attempt is FENCED when it names another attempt', () => {
    const { h, w, a, task } = running();
    const before = { ...task };
    const ack = w.running({ taskId: a.taskId, attempt: 2 }, 9);
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'FENCED', state: 'RUNNING', version: 3 });
    expect(ack.message).toBe('attempt 2 is not current; this session holds attempt 1');
    expectUntouched(h, task, before);
  });

  it('a session that never held the task gets NOT_HELD', () => {
    const { h, a, task } = running();
    const before = { ...task };
    const other = h.open();
    expect(other.running(a, 9)).toMatchObject({ result: 'REJECTED', reason: 'NOT_HELD', state: 'RUNNING', version: 3 });
    expectUntouched(h, task, before);
  });

  it('an unknown task gets NOT_HELD with no state', () => {
    const { w } = running();
    expect(w.running({ taskId: 'nope', attempt: 1 }, 9)).toMatchObject({
      result: 'REJECTED',
      reason: 'NOT_HELD',
      state: '',
      version: 0,
      taskId: 'nope',
    });
  });
});

describe('cancel and the worker', () => {
  function cancelledWhileRunning(h: CoreHarness, w: WorkerStream) {
    const a = submitAndAssign(h, w);
    w.running(a, 3);
    expect(h.cancel(a.taskId, 'user asked')).toEqual({ state: 'CANCELLED', cancelled: true });
    return a;
  }

  it('confirming CANCELLED after a Cancel is accepted and releases the slot', () => {
    const h = createHarness();
    const w = h.open({ slots: 1 });
    const a = cancelledWhileRunning(h, w);
    expect(h.takeCancels()).toEqual([{ sessionId: w.id, taskId: a.taskId, attempt: 1, reason: 'CANCELLED' }]);
    expect([a.task.state, a.task.version]).toEqual(['CANCELLED', 4]);
    expect(a.task.error).toMatchObject({ reason: 'CANCELLED', message: 'cancelled: user asked', retryable: false });
    const t2 = h.submit();
    expect(h.dispatch()).toEqual([]);
    expect(w.cancelled(a, 5)).toMatchObject({ result: 'ACCEPTED', reason: '', state: 'CANCELLED', version: 4 });
    expect(w.heldCount).toBe(0);
    expect(h.dispatch()).toMatchObject([{ taskId: t2.id }]);
  });

  it('a worker that finishes anyway after a Cancel is told TERMINAL and its slot is released; the task stays CANCELLED', () => {
    const h = createHarness();
    const w = h.open({ slots: 1 });
    const a = cancelledWhileRunning(h, w);
    const progress = w.running(a, 5);
    expect(progress).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL', state: 'CANCELLED', version: 4 });
    expect(progress.message).toBe('task is CANCELLED; stop working on it');
    expect(w.heldCount).toBe(1);
    const done = w.complete(a, 6);
    expect(done).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL', state: 'CANCELLED', version: 4 });
    expect(done.message).toBe('task is CANCELLED; slot released');
    expect(w.heldCount).toBe(0);
    expect(a.task.state).toBe('CANCELLED');
  });
});
