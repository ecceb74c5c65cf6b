import { describe, expect, it } from 'vitest';
import { createHarness, submitAndAssign, T0 } from '../support/core-harness';

// Default backoff (1 s initial, x2, 20% jitter) with random() = 0.5: retry n waits 0.9 * 1000 * 2^(n-1) ms.

describe('attempt timeout', () => {
  it('times out a RUNNING attempt exactly at its deadline and retries it after backoff', () => {
    const h = createHarness();
    const w1 = h.open({ slots: 1 });
    const a = submitAndAssign(h, w1, { attemptTimeoutMs: 1000 });
    expect(a.deadlineMs).toBe(T0 + 1000);
    expect(a.task.attemptDeadlineMs).toBe(T0 + 1000);
    w1.running(a, 3);
    h.advance(999);
    expect([a.task.state, a.task.attempt]).toEqual(['RUNNING', 1]);
    expect(h.takeCancels()).toEqual([]);

    h.advance(1);
    expect([a.task.state, a.task.attempt, a.task.version, a.task.sessionId, a.task.attemptDeadlineMs]).toEqual(['PENDING', 2, 4, '', 0]);
    expect(a.task.error).toMatchObject({ reason: 'ATTEMPT_TIMEOUT', message: 'attempt 1 exceeded attempt_timeout_ms=1000', retryable: true });
    expect(a.task.notBeforeMs).toBe(T0 + 1000 + 900);
    expect(h.takeCancels()).toEqual([{ sessionId: w1.id, taskId: a.taskId, attempt: 1, reason: 'ATTEMPT_TIMEOUT' }]);
  });

  it('keeps the timed-out worker slot occupied (orphan hold) and gives the retry a fresh, later deadline', () => {
    const h = createHarness();
    const w1 = h.open({ slots: 1 });
    const a = submitAndAssign(h, w1, { attemptTimeoutMs: 1000 });
    w1.running(a, 3);
    h.advance(1000);
    const w2 = h.open({ slots: 1 });
    expect(w1.heldCount).toBe(1);

    // Not before the backoff has passed.
    h.advance(899);
    expect(h.dispatch()).toEqual([]);
    h.advance(1);
    const [b] = h.dispatch();
    // w1 is still busy with the orphan, so the retry goes to w2.
    expect(b).toMatchObject({ taskId: a.taskId, sessionId: w2.id, attempt: 2, version: 5 });
    expect(b!.deadlineMs).toBe(T0 + 1900 + 1000);
    expect(b!.deadlineMs).toBeGreaterThan(a.deadlineMs);
    expect(a.task.attemptDeadlineMs).toBe(b!.deadlineMs);
  });

  it('gives the retry a fresh deadline even when the same worker takes it again', () => {
    const h = createHarness();
    const w = h.open({ slots: 1 });
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 1000 });
    h.advance(1000);
    expect(w.fail(a, 3, null)).toMatchObject({ result: 'REJECTED', reason: 'FENCED' });
    h.advance(900);
    const [b] = h.dispatch();
    expect(b).toMatchObject({ sessionId: w.id, attempt: 2, deadlineMs: T0 + 2900 });
    // The old deadline never fires for the new attempt.
    h.advance(999);
    expect([a.task.state, a.task.attempt]).toEqual(['ASSIGNED', 2]);
    h.advance(1);
    expect([a.task.state, a.task.attempt]).toEqual(['PENDING', 3]);
  });

  it('times out an ASSIGNED attempt that never started running', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 5000 });
    h.advance(5000);
    expect([a.task.state, a.task.attempt]).toEqual(['PENDING', 2]);
    expect(h.takeCancels()).toMatchObject([{ taskId: a.taskId, attempt: 1, reason: 'ATTEMPT_TIMEOUT' }]);
  });

  it('progress updates do not extend the deadline', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 5000 });
    for (let v = 3; v < 8; v++) {
      h.advance(999);
      expect(w.running(a, v, v * 10).result).toBe('ACCEPTED');
    }
    h.advance(5);
    expect([a.task.state, a.task.attempt]).toEqual(['PENDING', 2]);
  });

  it('each retry gets a later deadline than the one before; exhausted attempts end FAILED', () => {
    const h = createHarness();
    const w = h.open({ slots: 10 });
    const task = h.submit({ attemptTimeoutMs: 1000, maxAttempts: 3 });
    const deadlines: number[] = [];
    const backoffs: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      if (attempt > 1) h.advanceTo(task.notBeforeMs);
      const [a] = h.dispatch();
      expect(a).toMatchObject({ taskId: task.id, sessionId: w.id, attempt });
      deadlines.push(a!.deadlineMs);
      h.advanceTo(a!.deadlineMs);
      expect(h.takeCancels()).toEqual([{ sessionId: w.id, taskId: task.id, attempt, reason: 'ATTEMPT_TIMEOUT' }]);
      if (attempt < 3) backoffs.push(task.notBeforeMs - h.now);
    }
    expect(backoffs).toEqual([900, 1800]);
    expect(deadlines[1]).toBeGreaterThan(deadlines[0]!);
    expect(deadlines[2]).toBeGreaterThan(deadlines[1]!);
    expect([task.state, task.attempt]).toEqual(['FAILED', 3]);
    expect(task.error).toMatchObject({ reason: 'ATTEMPT_TIMEOUT', retryable: true });
    expect(task.error?.message).toBe('attempt 3 exceeded attempt_timeout_ms=1000 (gave up after 3 of 3 attempts)');
    // Three orphan holds wait for the worker to report.
    expect(w.heldCount).toBe(3);
  });

  it('does not fire for an attempt that finished in time', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 1000 });
    h.advance(999);
    w.complete(a, 3);
    h.advance(10_000);
    expect([a.task.state, a.task.version]).toEqual(['COMPLETED', 3]);
    expect(h.takeCancels()).toEqual([]);
  });

  it('does not fire for an attempt that lost its lease first', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 1000 });
    h.advance(500);
    h.close(w);
    expect([a.task.state, a.task.attempt, a.task.version]).toEqual(['PENDING', 2, 3]);
    h.advance(10_000);
    expect([a.task.state, a.task.attempt, a.task.version]).toEqual(['PENDING', 2, 3]);
    expect(h.takeCancels()).toEqual([]);
  });
});

describe('schedule-to-start timeout', () => {
  it('fails a task nobody started within the timeout with SCHEDULE_TO_START_TIMEOUT', () => {
    const h = createHarness();
    const task = h.submit({ scheduleToStartTimeoutMs: 5000, queue: 'lonely' });
    h.advance(4999);
    expect(task.state).toBe('PENDING');
    h.advance(1);
    expect([task.state, task.version, task.attempt]).toEqual(['FAILED', 2, 1]);
    expect(task.error).toMatchObject({ reason: 'SCHEDULE_TO_START_TIMEOUT', code: 4, retryable: false });
    expect(task.error?.message).toContain('schedule_to_start_timeout_ms=5000');
    expect(task.error?.message).toContain('queue "lonely"');
    h.open({ queues: ['lonely'] });
    expect(h.dispatch()).toEqual([]);
  });

  it('does not fail a task that was started in time', () => {
    const h = createHarness();
    const task = h.submit({ scheduleToStartTimeoutMs: 5000, attemptTimeoutMs: 600_000 });
    h.advance(4000);
    const w = h.open();
    const [a] = h.dispatch();
    w.running(a!, 3);
    h.advance(10_000);
    w.touch();
    expect([task.state, task.version]).toEqual(['RUNNING', 3]);
  });

  it('a task without the timeout (0) waits forever', () => {
    const h = createHarness();
    const task = h.submit({ scheduleToStartTimeoutMs: 0 });
    expect(h.engine.nextWakeAtMs()).toBeUndefined();
    h.advance(365 * 24 * 3600_000);
    expect(task.state).toBe('PENDING');
  });

  it('counts from the delayed start, not from submit', () => {
    const h = createHarness();
    const task = h.submit({ notBeforeMs: T0 + 10_000, scheduleToStartTimeoutMs: 5000 });
    h.advance(5000);
    expect(task.state).toBe('PENDING');
    h.advance(9999);
    expect(task.state).toBe('PENDING');
    h.advance(1);
    expect(task.state).toBe('FAILED');
    expect(task.error?.reason).toBe('SCHEDULE_TO_START_TIMEOUT');
  });

  it('starts over after a lease-loss retry', () => {
    const h = createHarness();
    const w = h.open();
    const task = h.submit({ scheduleToStartTimeoutMs: 5000 });
    h.advance(1000);
    h.dispatch();
    h.advance(3000);
    h.close(w); // re-queued at T0+4000
    h.advance(1000); // T0+5000: the first window would have ended here
    expect([task.state, task.attempt]).toEqual(['PENDING', 2]);
    h.advance(3999);
    expect(task.state).toBe('PENDING');
    h.advance(1);
    expect([task.state, task.attempt]).toEqual(['FAILED', 2]);
    expect(task.error?.reason).toBe('SCHEDULE_TO_START_TIMEOUT');
  });

  it('after a timeout retry, counts from the end of the backoff', () => {
    const h = createHarness();
    const w = h.open();
    const task = h.submit({ attemptTimeoutMs: 1000, scheduleToStartTimeoutMs: 2000 });
    h.dispatch();
    h.advance(1000); // timeout; ready again at T0+1900
    h.close(w);
    h.advanceTo(T0 + 1900 + 1999);
    expect(task.state).toBe('PENDING');
    h.advance(1);
    expect(task.state).toBe('FAILED');
    expect(task.error?.reason).toBe('SCHEDULE_TO_START_TIMEOUT');
  });
});

describe('delayed start (notBeforeMs)', () => {
  it('is not dispatched before its time and is dispatched at it', () => {
    const h = createHarness();
    const w = h.open({ slots: 5 });
    const task = h.submit({ notBeforeMs: T0 + 10_000 });
    expect(h.dispatch()).toEqual([]);
    // It waits in the store; the claim that came back short said when to claim again.
    expect(h.engine.nextWakeAtMs()).toBe(T0 + 10_000);
    h.advance(9_999);
    w.touch();
    expect(h.dispatch()).toEqual([]);
    h.advance(1);
    expect(h.dispatch()).toMatchObject([{ taskId: task.id, sessionId: w.id, attempt: 1, version: 2 }]);
  });

  it('a time in the past or now is dispatched at once', () => {
    const h = createHarness();
    h.open({ slots: 5 });
    const past = h.submit({ notBeforeMs: T0 - 1000 });
    const now = h.submit({ notBeforeMs: T0 });
    expect(h.dispatch().map((a) => a.taskId)).toEqual([past.id, now.id]);
  });

  it('a delayed task does not hold up ready tasks behind it', () => {
    const h = createHarness();
    h.open({ slots: 1 });
    const later = h.submit({ notBeforeMs: T0 + 1000, priority: 100 });
    const ready = h.submit({ priority: 0 });
    expect(h.dispatch().map((a) => a.taskId)).toEqual([ready.id]);
    expect(later.state).toBe('PENDING');
  });
});
