import { describe, expect, it } from 'vitest';
import { createHarness, fixedRandom, submitAndAssign, T0 } from '../support/core-harness';

describe('stream end (closeSession)', () => {
  it('re-queues every unfinished task of the session at once, attempt+1, and reports the close', () => {
    const random = fixedRandom(0.5);
    const h = createHarness({ random });
    const w1 = h.open({ slots: 3 });
    const t1 = h.submit();
    const t2 = h.submit();
    const t3 = h.submit();
    const [a1, a2, a3] = h.dispatch();
    w1.running(a2!, 3);
    w1.complete(a3!, 3);
    h.advance(10);
    h.dirtyIds();

    h.close(w1, 'STREAM_ENDED');
    expect(h.takeClosed()).toEqual([{ sessionId: w1.id, cause: 'STREAM_ENDED' }]);
    for (const t of [t1, t2]) {
      expect([t.state, t.attempt, t.sessionId, t.attemptDeadlineMs, t.notBeforeMs]).toEqual(['PENDING', 2, '', 0, T0 + 10]);
      expect(t.error).toMatchObject({ reason: 'LEASE_LOST', retryable: true });
      expect(t.error?.message).toBe(`session ${w1.id} of worker worker-1 ended (STREAM_ENDED)`);
    }
    expect([t1.version, t2.version]).toEqual([3, 4]);
    expect(t3.state).toBe('COMPLETED');
    expect(h.dirtyIds().sort()).toEqual([t1.id, t2.id].sort());
    expect(random.calls).toBe(0); // no backoff on lease loss
    expect(w1.heldCount).toBe(0);
    expect(a1!.attempt).toBe(1);

    // Re-queued at once: another session picks them up without the clock moving.
    const w2 = h.open({ slots: 3 });
    const again = h.dispatch();
    expect(again.map((a) => [a.taskId, a.sessionId, a.attempt])).toEqual([
      [t1.id, w2.id, 2],
      [t2.id, w2.id, 2],
    ]);
  });

  it('fails a task whose last attempt loses its lease', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w, { maxAttempts: 1 });
    h.close(w);
    expect([a.task.state, a.task.attempt, a.task.version]).toEqual(['FAILED', 1, 3]);
    expect(a.task.error).toMatchObject({ reason: 'LEASE_LOST' });
    expect(a.task.error?.message).toContain('(gave up after 1 of 1 attempts)');
  });

  it('closing twice reports one close and re-queues once', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w);
    h.close(w);
    h.close(w, 'IDLE');
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'STREAM_ENDED' }]);
    expect([a.task.attempt, a.task.version]).toEqual([2, 3]);
  });

  it('a closed session gets no new tasks', () => {
    const h = createHarness();
    const w = h.open({ slots: 5 });
    h.close(w);
    h.submit();
    expect(h.dispatch()).toEqual([]);
    h.setSlots(w, 10);
    expect(h.dispatch()).toEqual([]);
  });

  it('keeps the task assigned while the session is alive, however long it runs within its timeout', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 10 * 60_000 });
    w.running(a, 3);
    for (let i = 0; i < 20; i++) {
      h.advance(20_000);
      w.touch();
    }
    expect([a.task.state, a.task.sessionId, a.task.attempt]).toEqual(['RUNNING', w.id, 1]);
    expect(h.takeClosed()).toEqual([]);
  });
});

describe('idle window', () => {
  it('closes a silent session IDLE exactly at idleTimeoutMs (45 s default) and re-queues its tasks at once', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w);
    // The first deadline is the 15 s heartbeat; the idle window ends at 45 s.
    expect(h.engine.nextWakeAtMs()).toBe(T0 + 15_000);
    h.advance(44_999);
    expect(h.takeClosed()).toEqual([]);
    expect(a.task.state).toBe('ASSIGNED');
    h.advance(1);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'IDLE' }]);
    expect([a.task.state, a.task.attempt, a.task.notBeforeMs]).toEqual(['PENDING', 2, T0 + 45_000]);
    expect(a.task.error?.message).toContain('(IDLE)');
  });

  it('touch keeps a session alive; the window restarts at the last sign of life', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 600_000 });
    w.running(a, a.version + 1); // a live worker acknowledges its assignment
    h.advance(30_000);
    w.touch();
    h.advance(15_000); // t = 45 s: the first idle deadline passes, but the session spoke at 30 s
    expect(h.takeClosed()).toEqual([]);
    h.advance(29_999);
    expect(h.takeClosed()).toEqual([]);
    expect(a.task.state).toBe('RUNNING');
    h.advance(1);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'IDLE' }]);
    expect(a.task.state).toBe('PENDING');
  });

  it('regular touches keep a session open indefinitely', () => {
    const h = createHarness();
    const w = h.open();
    for (let i = 0; i < 100; i++) {
      h.advance(15_000);
      w.touch();
    }
    expect(h.takeClosed()).toEqual([]);
    expect(w.session.lifecycle).toBe('OPEN');
  });

  it('an update without touch is not a sign of life (the adapter must touch)', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 600_000 });
    h.advance(40_000);
    w.running(a, 3);
    h.advance(5_000);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'IDLE' }]);
  });

  it('honours a configured idleTimeoutMs', () => {
    const h = createHarness({ core: { keepalive: { minIntervalMs: 1000, maxIntervalMs: 1000, baseIdleMs: 3000 } } });
    const w1 = h.open();
    h.advance(1000);
    const w2 = h.open();
    h.advance(1999);
    expect(h.takeClosed()).toEqual([]);
    h.advance(1);
    expect(h.takeClosed()).toEqual([{ sessionId: w1.id, cause: 'IDLE' }]);
    h.advance(1000);
    expect(h.takeClosed()).toEqual([{ sessionId: w2.id, cause: 'IDLE' }]);
  });

  it('one long jump of the clock closes every silent session', () => {
    const h = createHarness();
    const ws = [h.open(), h.open(), h.open()];
    ws[1]!.touch();
    h.advance(100_000);
    expect(h.takeClosed().map((c) => c.sessionId).sort()).toEqual(ws.map((w) => w.id).sort());
  });

  it('a task re-queued by an idle close goes to a live session', () => {
    const h = createHarness();
    const idle = h.open();
    const a = submitAndAssign(h, idle);
    h.advance(30_000);
    const live = h.open();
    h.advance(15_000);
    expect(h.dispatch()).toMatchObject([{ taskId: a.taskId, sessionId: live.id, attempt: 2, version: 4 }]);
  });
});

describe('drain', () => {
  it('a session with nothing held closes DRAINED at once', () => {
    const h = createHarness();
    const w = h.open();
    h.drain(w);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'DRAINED' }]);
    expect(w.session.lifecycle).toBe('CLOSED');
  });

  it('gets no new tasks while in-flight ones may finish; closes DRAINED when the last one finishes', () => {
    const h = createHarness();
    const w = h.open({ slots: 3 });
    const a1 = submitAndAssign(h, w);
    const a2 = submitAndAssign(h, w);
    h.drain(w);
    expect(w.session.lifecycle).toBe('DRAINING');
    h.submit();
    expect(h.dispatch()).toEqual([]);
    h.advance(1000);
    expect(w.running(a1, 3).result).toBe('ACCEPTED');
    expect(w.complete(a1, 4).result).toBe('ACCEPTED');
    expect(h.takeClosed()).toEqual([]);
    expect(w.complete(a2, 3).result).toBe('ACCEPTED');
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'DRAINED' }]);
    expect([a1.task.state, a2.task.state]).toEqual(['COMPLETED', 'COMPLETED']);
  });

  it('re-queues what is left when the grace period (5 s default) ends, closing DRAIN_EXPIRED', () => {
    const h = createHarness();
    const w = h.open({ slots: 2 });
    const a1 = submitAndAssign(h, w);
    const a2 = submitAndAssign(h, w);
    h.drain(w);
    expect(h.engine.nextWakeAtMs()).toBe(T0 + 5_000);
    w.complete(a1, 3);
    h.advance(4_999);
    expect(h.takeClosed()).toEqual([]);
    expect(a2.task.state).toBe('ASSIGNED');
    h.advance(1);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'DRAIN_EXPIRED' }]);
    expect([a2.task.state, a2.task.attempt, a2.task.notBeforeMs]).toEqual(['PENDING', 2, T0 + 5_000]);
    expect(a2.task.error?.message).toContain('(DRAIN_EXPIRED)');
    expect(a1.task.state).toBe('COMPLETED');
    const w2 = h.open();
    expect(h.dispatch()).toMatchObject([{ taskId: a2.taskId, sessionId: w2.id, attempt: 2 }]);
  });

  it('honours an explicit grace period and drainGraceMs', () => {
    const h = createHarness({ core: { drainGraceMs: 2000 } });
    const w1 = h.open();
    const w2 = h.open();
    submitAndAssign(h, w1);
    submitAndAssign(h, w2);
    h.drain(w1);
    h.drain(w2, 500);
    h.advance(500);
    expect(h.takeClosed()).toEqual([{ sessionId: w2.id, cause: 'DRAIN_EXPIRED' }]);
    h.advance(1500);
    expect(h.takeClosed()).toEqual([{ sessionId: w1.id, cause: 'DRAIN_EXPIRED' }]);
  });

  it('a second drain does not move the deadline', () => {
    const h = createHarness();
    const w = h.open();
    submitAndAssign(h, w);
    h.drain(w, 1000);
    h.advance(900);
    h.drain(w, 1000);
    h.advance(100);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'DRAIN_EXPIRED' }]);
  });

  it('drainAll drains every open session', () => {
    const h = createHarness();
    const busy = h.open();
    const a = submitAndAssign(h, busy);
    const idle = h.open();
    const drained = h.engine.drainAll(1000);
    h.collect();
    expect(drained.map((s) => s.id).sort()).toEqual([idle.id, busy.id].sort());
    expect(h.takeClosed()).toEqual([{ sessionId: idle.id, cause: 'DRAINED' }]);
    h.advance(1000);
    expect(h.takeClosed()).toEqual([{ sessionId: busy.id, cause: 'DRAIN_EXPIRED' }]);
    expect(a.task.state).toBe('PENDING');
  });

  it('a drained worker that confirms a cancelled task closes DRAINED', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w);
    h.drain(w);
    h.cancel(a.taskId);
    expect(h.takeClosed()).toEqual([]);
    w.cancelled(a, 3);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'DRAINED' }]);
  });

  it('a drained worker that fails a task retryably closes DRAINED and the task goes to another session', () => {
    const h = createHarness({ core: { backoff: { initialMs: 0, multiplier: 1, maxMs: 0, jitter: 0 } } });
    const w = h.open();
    const a = submitAndAssign(h, w);
    h.drain(w);
    const w2 = h.open();
    w.fail(a, 3, null);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'DRAINED' }]);
    expect(h.dispatch()).toMatchObject([{ taskId: a.taskId, sessionId: w2.id, attempt: 2 }]);
  });
});
