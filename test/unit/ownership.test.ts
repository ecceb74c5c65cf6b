import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock';
import type { TaskRecord } from '../../src/core/task-fields';
import { byTask, CoreHarness, createHarness, fixedRandom, T0 } from '../support/core-harness';
import { MemoryStoreCore } from '../support/memory-task-store';
import { taskRecord } from '../support/task-record';

/** A task a dead dispatcher (`ghost#1`) held: what a crash leaves in the store. */
function heldByGhost(id: string, overrides: Partial<TaskRecord> = {}): TaskRecord {
  return taskRecord(id, {
    state: 'RUNNING',
    owner: 'ghost#1',
    sessionId: 'old-session',
    workerId: 'old-worker',
    attempt: 1,
    version: 3,
    leaseExpiresMs: T0 - 1,
    attemptDeadlineMs: T0 + 50_000,
    progressPermille: 400,
    createdMs: T0 - 10_000,
    ...overrides,
  });
}

/** Writes records straight into the store, as a previous run left them. */
function seed(store: MemoryStoreCore, records: TaskRecord[]): void {
  store.commit({ nowMs: T0 - 1, owner: 'seed#1', dispatcherZone: '', leaseExpiresMs: 0, spilloverDelayMs: 0, idempotencyRetentionMs: 86_400_000, inserts: records, writes: [], claims: [] });
}

/** Two dispatchers (engines) over one shared store, on one clock. */
function pair(options: { zones?: [string, string]; delayMs?: number; leaseMs?: number } = {}): { a: CoreHarness; b: CoreHarness; store: MemoryStoreCore; clock: ManualClock } {
  const store = new MemoryStoreCore(false);
  const clock = new ManualClock(T0);
  const core = { zoneSpilloverDelayMs: options.delayMs ?? 0, taskLeaseMs: options.leaseMs ?? 10_000 };
  const a = new CoreHarness({ store, clock, owner: 'dispatcher-a#1', zone: options.zones?.[0] ?? 'a', core });
  const b = new CoreHarness({ store, clock, owner: 'dispatcher-b#1', zone: options.zones?.[1] ?? 'b', core });
  return { a, b, store, clock };
}

describe('restart: the tasks a crashed dispatcher held', () => {
  it('re-queues them with a new attempt after backoff, and keeps PENDING ones as they were', () => {
    const store = new MemoryStoreCore();
    seed(store, [heldByGhost('r1'), taskRecord('p1', { attempt: 2, version: 5, createdMs: T0 - 10_000 })]);
    const random = fixedRandom(0.5);
    const h = createHarness({ store, random });
    h.sweep();
    const r1 = h.task('r1');
    expect([r1.state, r1.attempt, r1.version, r1.owner, r1.sessionId, r1.attemptDeadlineMs]).toEqual(['PENDING', 2, 4, '', '', 0]);
    expect(r1.error).toMatchObject({ reason: 'LEASE_LOST', retryable: true, message: 'dispatcher ghost#1 stopped heartbeating while it held attempt 1' });
    // Backoff: retry 1 waits 0.9 s with random() = 0.5.
    expect(r1.notBeforeMs).toBe(T0 + 900);
    expect(random.calls).toBe(1);
    const w = h.open();
    expect(h.dispatch()).toMatchObject([{ taskId: 'p1', sessionId: w.id, attempt: 2, version: 6 }]);
  });

  it('an exclusive store (SQLite) ends every other entry when one registers, so a restart recovers at once', () => {
    const store = new MemoryStoreCore(true);
    store.register({ owner: 'ghost#1', dispatcherId: 'ghost', zone: '', address: '' }, T0, T0 + 3_600_000);
    seed(store, [heldByGhost('r1', { leaseExpiresMs: T0 - 1 })]);
    const h = createHarness({ store, core: { backoff: { initialMs: 0, multiplier: 1, maxMs: 0, jitter: 0 } } });
    h.sweep();
    const w = h.open();
    expect(h.dispatch()).toMatchObject([{ taskId: 'r1', sessionId: w.id, attempt: 2 }]);
  });

  it('fails a held task whose attempts are exhausted', () => {
    const store = new MemoryStoreCore();
    seed(store, [heldByGhost('r1', { attempt: 3, maxAttempts: 3, version: 9 })]);
    const h = createHarness({ store });
    h.sweep();
    const t = h.task('r1');
    expect([t.state, t.attempt, t.version]).toEqual(['FAILED', 3, 10]);
    expect(t.error?.message).toContain('(gave up after 3 of 3 attempts)');
    h.open();
    expect(h.dispatch()).toEqual([]);
  });

  it('keeps the FIFO order of the previous run and puts new submits behind it', () => {
    const store = new MemoryStoreCore();
    seed(store, [taskRecord('a', { priority: 0 }), taskRecord('b'), taskRecord('c'), taskRecord('d', { priority: -1 })]);
    const h = createHarness({ store });
    const fresh = h.submit();
    const w = h.open({ slots: 1 });
    const order: string[] = [];
    for (let i = 0; i < 5; i++) {
      const [next] = h.dispatch();
      order.push(next!.taskId);
      w.complete(next!, next!.version + 1);
    }
    expect(order).toEqual(['a', 'b', 'c', fresh.id, 'd']);
  });

  it('a delayed start and a schedule-to-start deadline of the store are kept', () => {
    const store = new MemoryStoreCore();
    seed(store, [taskRecord('later', { readyAtMs: T0 + 1000, notBeforeMs: T0 + 1000 }), taskRecord('strict', { queue: 'nobody', startDeadlineMs: T0 + 500 })]);
    const h = createHarness({ store });
    const w = h.open();
    expect(h.dispatch()).toEqual([]);
    h.advance(500);
    expect(h.task('strict')).toMatchObject({ state: 'FAILED', error: { reason: 'SCHEDULE_TO_START_TIMEOUT' } });
    w.touch();
    h.advance(500);
    expect(byTask(h.dispatch())).toEqual({ later: w.id });
  });

  it('an idempotency key in the store still deduplicates: the new task is not created and the submit answers with the old one', () => {
    const store = new MemoryStoreCore();
    seed(store, [taskRecord('k', { idempotencyKey: 'order-42', createdMs: T0 - 1 })]);
    const h = createHarness({ store });
    const t = h.submit({ idempotencyKey: 'order-42' });
    h.dispatch();
    expect(h.engine.resolveSubmitted(t.id)).toEqual({ taskId: 'k', deduplicated: true });
    expect(store.get(t.id)).toBeUndefined();
    expect(h.engine.stats().tasksInMemory).toBe(0);
  });
});

describe('memory holds only what this dispatcher claimed', () => {
  it('10,000 queued tasks stay in the store; the engine holds the 4 its workers run', () => {
    const h = createHarness();
    for (let i = 0; i < 10_000; i++) h.submit();
    h.dispatch();
    expect(h.engine.stats().tasksInMemory).toBe(0);
    const w = h.open({ slots: 4 });
    const assigned = h.dispatch();
    expect(assigned.length).toBe(4);
    expect(h.engine.stats()).toMatchObject({ tasksInMemory: 4, heldTasks: 4 });
    // Completing one claims the next in the same commit.
    w.complete(assigned[0]!, assigned[0]!.version + 1);
    expect(h.dispatch().length).toBe(1);
    expect(h.engine.stats().tasksInMemory).toBe(4);
    expect(h.store.countByState()).toMatchObject({ PENDING: 10_000 - 5, COMPLETED: 1, ASSIGNED: 4 });
  });

  it('a finished task leaves memory once its final state is durable; late updates still get their answers', () => {
    const h = createHarness();
    const w = h.open();
    h.dispatch();
    const t = h.submit();
    const [a] = h.dispatch();
    w.complete(a!, 3);
    expect(h.engine.getTask(t.id)).toBeDefined();
    h.dispatch();
    expect(h.engine.getTask(t.id)).toBeUndefined();
    expect(w.complete(a!, 3)).toMatchObject({ result: 'DUPLICATE', state: 'COMPLETED', version: 3 });
    expect(w.running(a!, 4)).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL', state: 'COMPLETED', version: 3 });
    expect(h.cancel(t.id)).toEqual({ state: 'COMPLETED', cancelled: false });
  });
});

describe('commits that fail', () => {
  it('drop new tasks (their submits were told so) and write changes again next time', () => {
    const h = createHarness();
    const w = h.open();
    h.dispatch();
    const kept = h.submit();
    const [a] = h.dispatch();
    w.running(a!, 3);
    const lost = h.submit();
    h.failNextCommits(1);
    h.commit();
    expect(h.engine.getTask(lost.id)).toBeUndefined();
    expect(h.store.get(lost.id)).toBeUndefined();
    expect(h.store.get(kept.id)?.state).toBe('ASSIGNED');
    h.dispatch();
    expect(h.store.get(kept.id)).toMatchObject({ state: 'RUNNING', version: 3 });
    expect(h.engine.stats().tasksInMemory).toBe(1);
  });

  it('give up their claims: the slots are free for the next one', () => {
    const store = new MemoryStoreCore();
    seed(store, [taskRecord('p1'), taskRecord('p2')]);
    const h = createHarness({ store });
    const w = h.open({ slots: 2 });
    h.failNextCommits(1);
    h.commit();
    expect(w.session.claimPending).toBe(0);
    expect(h.dispatch().map((x) => x.taskId).sort()).toEqual(['p1', 'p2']);
  });

  it('after an unknown outcome, what the store says this dispatcher holds and it does not know is given back', () => {
    const store = new MemoryStoreCore();
    seed(store, [heldByGhost('mine', { owner: 'dispatcher-1#1', leaseExpiresMs: T0 + 10_000 })]);
    const h = createHarness({ store });
    h.engine.reconcile(store.owned(h.owner));
    h.dispatch();
    expect(h.store.get('mine')).toMatchObject({ state: 'PENDING', owner: '', attempt: 1, version: 4 });
    const w = h.open();
    expect(h.dispatch()).toMatchObject([{ taskId: 'mine', sessionId: w.id, attempt: 1 }]);
  });
});

describe('several dispatchers over one store', () => {
  it('never hand one task to two sessions when both claim at once', () => {
    const { a, b, store } = pair();
    seed(store, Array.from({ length: 50 }, (_, i) => taskRecord(`t${i}`)));
    a.open({ slots: 10 });
    b.open({ slots: 10 });
    const seen = new Map<string, string>();
    for (let round = 0; round < 5; round++) {
      for (const h of [a, b]) {
        for (const x of h.dispatch()) {
          expect(seen.has(x.taskId)).toBe(false);
          seen.set(x.taskId, h.owner);
          h.engine.getSession(x.sessionId);
        }
      }
      for (const h of [a, b]) {
        for (const task of [...seen.keys()]) {
          const live = h.engine.getTask(task);
          if (live !== undefined && live.state === 'ASSIGNED') {
            const session = h.engine.getSession(live.sessionId)!;
            h.engine.applyUpdate(session, { taskId: task, attempt: live.attempt, status: 'COMPLETED', sequenceId: session.sequence.lastSequenceId + 1, version: live.version + 1, progressPermille: 1000, result: null, error: null });
          }
        }
      }
    }
    expect(seen.size).toBe(50);
    expect(new Set(seen.values()).size).toBe(2);
  });

  it('a task submitted in zone b runs on a zone-a worker after the spillover delay when b has no free slot', () => {
    const { a, b } = pair({ delayMs: 1_000 });
    const busy = b.open({ zone: 'b', slots: 1 });
    b.dispatch();
    const blocker = b.submit();
    expect(b.dispatch()).toMatchObject([{ taskId: blocker.id, sessionId: busy.id }]);
    const t = b.submit();
    b.dispatch();
    const idle = a.open({ zone: 'a', slots: 1 });
    expect(a.dispatch()).toEqual([]);
    a.advance(999);
    expect(a.takeAssignments()).toEqual([]);
    a.advance(1);
    expect(a.takeAssignments()).toMatchObject([{ taskId: t.id, sessionId: idle.id }]);
    expect(t).toMatchObject({ owner: 'dispatcher-a#1', dispatcherZone: 'a', workerZone: 'a', acceptedZone: 'b' });
  });

  it('a dead dispatcher\'s tasks run again elsewhere once its lease expires; its late update is fenced by the store', () => {
    const { a, b, clock } = pair({ leaseMs: 3_000 });
    const wb = b.open({ zone: 'b' });
    b.dispatch();
    const submitted = b.submit({ maxAttempts: 3 });
    // What the store says (b's engine keeps its own view until it learns otherwise).
    const t = a.task(submitted.id);
    const [held] = b.dispatch();
    wb.running(held!, 3);
    b.dispatch();
    const wa = a.open({ zone: 'a' });
    a.dispatch();
    // b stops heartbeating (SIGSTOP); a keeps going.
    a.advance(2_999);
    expect(a.takeAssignments()).toEqual([]);
    a.advance(2);
    // Re-queued with backoff (0.9 s), then claimed by a.
    expect(t).toMatchObject({ state: 'PENDING', attempt: 2, owner: '' });
    a.advance(900);
    expect(a.takeAssignments()).toMatchObject([{ taskId: t.id, sessionId: wa.id, attempt: 2 }]);
    // b wakes up: its worker's progress on attempt 1 goes to the store, conflicts, and the worker is told to abort.
    clock.advance(0);
    expect(wb.sendCommitted({ taskId: t.id, attempt: 1, status: 'RUNNING', version: 4, progressPermille: 500 })).toMatchObject({ result: 'REJECTED', reason: 'FENCED' });
    expect(b.takeCancels()).toMatchObject([{ taskId: t.id, attempt: 1, reason: 'LEASE_LOST' }]);
    expect(b.engine.getTask(t.id)).toBeUndefined();
    // Its completion of attempt 1 must not land either; the slot is released.
    expect(wb.sendCommitted({ taskId: t.id, attempt: 1, status: 'COMPLETED', version: 5, progressPermille: 1000 })).toMatchObject({ result: 'REJECTED', reason: 'FENCED' });
    expect(wb.heldCount).toBe(0);
    expect(t).toMatchObject({ state: 'ASSIGNED', attempt: 2, owner: 'dispatcher-a#1' });
    // a's worker finishes attempt 2: exactly one accepted terminal result.
    expect(wa.sendCommitted({ taskId: t.id, attempt: 2, status: 'COMPLETED', version: t.version + 1, progressPermille: 1000 })).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED' });
  });

  it('a cancel through one dispatcher reaches the worker of the other', () => {
    const { a, b } = pair();
    const wb = b.open({ zone: 'b' });
    b.dispatch();
    const t = b.submit();
    b.dispatch();
    expect(a.cancel(t.id, 'user asked')).toEqual({ state: 'CANCELLED', cancelled: true });
    // b hears it (NOTIFY, or its next reconcile) and lets go: the worker is told.
    b.engine.lose(t.id, b.store.get(t.id));
    expect(b.takeCancels()).toMatchObject([{ sessionId: wb.id, taskId: t.id, reason: 'CANCELLED' }]);
    expect(wb.heldCount).toBe(1);
    expect(wb.cancelled({ taskId: t.id, attempt: 1 }, 3)).toMatchObject({ result: 'ACCEPTED' });
    expect(wb.heldCount).toBe(0);
  });

  it('a write that lost to another dispatcher comes back as a conflict: the task is dropped and the worker told to abort', () => {
    const { a, b } = pair();
    const wb = b.open({ zone: 'b' });
    b.dispatch();
    const t = b.submit();
    const [held] = b.dispatch();
    a.cancel(t.id);
    // b has not heard: its worker's update goes to the store and conflicts.
    const ack = wb.sendCommitted({ taskId: t.id, attempt: 1, status: 'RUNNING', version: held!.version + 1 });
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL', state: 'CANCELLED' });
    expect(b.takeCancels()).toMatchObject([{ taskId: t.id, reason: 'CANCELLED' }]);
    expect(t.state).toBe('CANCELLED');
  });

  it('the same idempotency key through two dispatchers creates one task', () => {
    const { a, b, store } = pair();
    const ta = a.submit({ idempotencyKey: 'once' });
    const tb = b.submit({ idempotencyKey: 'once' });
    a.dispatch();
    b.dispatch();
    expect(b.engine.resolveSubmitted(tb.id)).toEqual({ taskId: ta.id, deduplicated: true });
    expect(store.getMany([ta.id, tb.id]).map((r) => r.id)).toEqual([ta.id]);
  });
});
