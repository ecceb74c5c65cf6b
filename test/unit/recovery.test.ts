import { describe, expect, it } from 'vitest';
import type { TaskRecord } from '../../src/core/task-fields';
import { errorInfo } from '../../src/errors';
import { byTask, createHarness, fixedRandom, T0 } from '../support/core-harness';
import { taskRecord } from '../support/task-record';

function record(overrides: Partial<TaskRecord>): TaskRecord {
  return taskRecord('r', { attemptTimeoutMs: 60_000, createdMs: T0 - 10_000, updatedMs: T0 - 5_000, payload: new Uint8Array([1]), ...overrides });
}

function running(id: string, overrides: Partial<TaskRecord> = {}): TaskRecord {
  return record({
    id,
    state: 'RUNNING',
    version: 3,
    sessionId: 'old-session',
    workerId: 'old-worker',
    attemptDeadlineMs: T0 + 50_000,
    progressPermille: 400,
    ...overrides,
  });
}

describe('recover', () => {
  it('keeps PENDING tasks as they were and makes them dispatchable', () => {
    const h = createHarness();
    h.engine.recover([record({ id: 'p1', seq: 7, version: 5, attempt: 2 })]);
    h.collect();
    const t = h.engine.getTask('p1')!;
    expect([t.state, t.attempt, t.version, t.sessionId]).toEqual(['PENDING', 2, 5, '']);
    const w = h.open();
    expect(h.dispatch()).toMatchObject([{ taskId: 'p1', sessionId: w.id, attempt: 2, version: 6 }]);
  });

  it.each(['ASSIGNED', 'RUNNING'] as const)('re-queues a %s task at once with attempt+1 and version+1 (lease lost)', (state) => {
    const random = fixedRandom(0.5);
    const h = createHarness({ random });
    h.engine.recover([running('r1', { state, attempt: 1, version: 3 })]);
    const t = h.engine.getTask('r1')!;
    expect([t.state, t.attempt, t.version, t.sessionId, t.attemptDeadlineMs, t.notBeforeMs]).toEqual(['PENDING', 2, 4, '', 0, T0]);
    expect(t.error).toMatchObject({ reason: 'LEASE_LOST', retryable: true });
    expect(t.error?.message).toBe('the dispatcher restarted while session old-session held attempt 1');
    expect(random.calls).toBe(0);
    const w = h.open();
    expect(h.dispatch()).toMatchObject([{ taskId: 'r1', sessionId: w.id, attempt: 2, version: 5 }]);
  });

  it('fails an ASSIGNED/RUNNING task whose attempts are exhausted', () => {
    const h = createHarness();
    h.engine.recover([running('r1', { attempt: 3, maxAttempts: 3, version: 9 })]);
    const t = h.engine.getTask('r1')!;
    expect([t.state, t.attempt, t.version, t.sessionId]).toEqual(['FAILED', 3, 10, '']);
    expect(t.error).toMatchObject({ reason: 'LEASE_LOST' });
    expect(t.error?.message).toContain('(gave up after 3 of 3 attempts)');
    h.open();
    expect(h.dispatch()).toEqual([]);
  });

  it('ignores terminal records', () => {
    const h = createHarness();
    h.engine.recover([
      record({ id: 'c', state: 'COMPLETED', version: 4 }),
      record({ id: 'f', state: 'FAILED', version: 4, error: errorInfo('HANDLER_FAILED', 'x') }),
      record({ id: 'x', state: 'CANCELLED', version: 2 }),
    ]);
    expect(['c', 'f', 'x'].map((id) => h.engine.getTask(id))).toEqual([undefined, undefined, undefined]);
    expect(h.engine.takeDirty()).toEqual([]);
    h.open({ slots: 5 });
    expect(h.dispatch()).toEqual([]);
  });

  it('marks every recovered task dirty with its new state', () => {
    const h = createHarness();
    h.engine.recover([record({ id: 'p', seq: 1 }), running('r', { seq: 2 }), running('dead', { seq: 3, attempt: 3 })]);
    const dirty = Object.fromEntries(h.engine.takeDirty().map((r) => [r.id, [r.state, r.attempt, r.version]]));
    expect(dirty).toEqual({ p: ['PENDING', 1, 1], r: ['PENDING', 2, 4], dead: ['FAILED', 3, 4] });
  });

  it('does not modify the records it was given', () => {
    const h = createHarness();
    const input = running('r1');
    const copy = { ...input };
    h.engine.recover([input]);
    expect(input).toEqual(copy);
  });

  it('keeps the FIFO order of the previous run and puts new submits behind it', () => {
    const h = createHarness();
    h.engine.recover([
      record({ id: 'c', seq: 30 }),
      record({ id: 'a', seq: 10 }),
      running('b', { seq: 20 }),
      record({ id: 'd', seq: 40, priority: -1 }),
    ]);
    const fresh = h.submit();
    const w = h.open({ slots: 1 });
    const order: string[] = [];
    for (let i = 0; i < 5; i++) {
      const [a] = h.dispatch();
      order.push(a!.taskId);
      w.complete(a!, a!.version + 1);
    }
    expect(order).toEqual(['a', 'b', 'c', fresh.id, 'd']);
  });

  it('respects a recovered delayed start and its schedule-to-start timeout', () => {
    const h = createHarness();
    h.engine.recover([
      record({ id: 'later', notBeforeMs: T0 + 1000 }),
      record({ id: 'strict', seq: 2, scheduleToStartTimeoutMs: 500, queue: 'nobody' }),
    ]);
    const w = h.open();
    expect(h.dispatch()).toEqual([]);
    h.advance(500);
    expect(h.engine.getTask('strict')!.state).toBe('FAILED');
    expect(h.engine.getTask('strict')!.error?.reason).toBe('SCHEDULE_TO_START_TIMEOUT');
    w.touch();
    h.advance(500);
    expect(byTask(h.dispatch())).toEqual({ later: w.id });
  });

  it('makes recovered idempotency keys findable', () => {
    const h = createHarness();
    h.engine.recover([record({ id: 'k', idempotencyKey: 'order-42' })]);
    expect(h.engine.findByIdempotencyKey('order-42')?.id).toBe('k');
  });

  it('recovered tasks follow the normal rules afterwards (timeouts, fencing)', () => {
    const h = createHarness({ core: { backoff: { initialMs: 0, multiplier: 1, maxMs: 0, jitter: 0 } } });
    h.engine.recover([running('r1', { attemptTimeoutMs: 1000 })]);
    const w = h.open();
    const [a] = h.dispatch();
    expect(a).toMatchObject({ attempt: 2, deadlineMs: T0 + 1000 });
    expect(w.running({ taskId: 'r1', attempt: 1 }, 100)).toMatchObject({ result: 'REJECTED', reason: 'FENCED' });
    h.advance(1000);
    expect(h.engine.getTask('r1')!.attempt).toBe(3);
  });
});

describe('committed', () => {
  it('evicts only finished tasks whose final version was committed', () => {
    const h = createHarness();
    const w = h.open({ slots: 3 });
    const done = h.submit();
    const busy = h.submit();
    const [a] = h.dispatch().filter((x) => x.taskId === done.id);
    w.complete(a!, 3);
    const dirty = h.engine.takeDirty();
    h.engine.committed(dirty);
    expect(h.engine.getTask(done.id)).toBeUndefined();
    expect(h.engine.getTask(busy.id)).toBe(busy);
  });

  it('keeps a finished task whose committed snapshot is older than its live version', () => {
    const h = createHarness();
    const w = h.open();
    const t = h.submit();
    const [a] = h.dispatch();
    w.running(a!, 3);
    const older = h.engine.takeDirty();
    w.complete(a!, 4);
    h.engine.committed(older);
    expect(h.engine.getTask(t.id)).toBe(t);
    h.engine.committed(h.engine.takeDirty());
    expect(h.engine.getTask(t.id)).toBeUndefined();
  });

  it('an identical resend after eviction is still a duplicate; a newer one is TERMINAL with the final state', () => {
    const h = createHarness();
    const w = h.open();
    const t = h.submit();
    const [a] = h.dispatch();
    w.complete(a!, 3);
    h.engine.committed(h.engine.takeDirty());
    expect(w.complete(a!, 3)).toMatchObject({ result: 'DUPLICATE', state: 'COMPLETED', version: 3 });
    expect(w.running(a!, 4)).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL', taskId: t.id, state: 'COMPLETED', version: 3 });
    expect(h.cancel(t.id)).toBeUndefined();
  });
});
