import { describe, expect, it } from 'vitest';
import type { EngineEvent, TaskEvent } from '../../src/core/task-events';
import { errorInfo } from '../../src/errors';
import { createHarness, submitAndAssign, T0, type CoreHarness, type HarnessOptions } from '../support/core-harness';
import { MemoryStoreCore } from '../support/memory-task-store';
import { taskRecord } from '../support/task-record';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const TRACESTATE = 'vendor=abc';
const NO_BACKOFF = { backoff: { initialMs: 0, multiplier: 1, maxMs: 0, jitter: 0 } };

/**
 * A harness whose engine's events are read as the adapter hands them to
 * observers: after the commit that carried them (the harness delivers
 * effects as the dispatcher does).
 */
function observed(opts: HarnessOptions = {}): { h: CoreHarness; events: EngineEvent[]; take: () => EngineEvent[] } {
  const h = createHarness({ zone: 'zone-d', ...opts });
  /** The events delivered since the last call, once what is pending is durable (the commits succeed unless a test fails them). */
  const take = (): EngineEvent[] => {
    h.settle();
    return h.events.splice(0);
  };
  return { h, events: h.events, take };
}

function kinds(events: readonly EngineEvent[]): string[] {
  return events.map((e) => e.kind);
}

/** The task events (of one kind, if given). */
function taskEvents(events: readonly EngineEvent[]): TaskEvent[];
function taskEvents<K extends TaskEvent['kind']>(events: readonly EngineEvent[], kind: K): Extract<TaskEvent, { kind: K }>[];
function taskEvents(events: readonly EngineEvent[], kind?: TaskEvent['kind']): TaskEvent[] {
  return events.filter((e): e is TaskEvent => 'taskId' in e && (kind === undefined || e.kind === kind));
}

describe('submitted', () => {
  it('comes only once the commit that inserted the task succeeded, with the producer and accepting zones', () => {
    const { h, take } = observed();
    const t = h.submit({ producerZone: 'zone-p', queue: 'jobs' });
    expect(kinds(h.events)).toEqual([]);
    h.clock.advance(7);
    h.commit();
    expect(take()).toEqual([
      {
        kind: 'submitted',
        taskId: t.id,
        queue: 'jobs',
        attempt: 1,
        atMs: T0 + 7,
        createdMs: T0,
        producerZone: 'zone-p',
        dispatcherZone: 'zone-d',
        workerZone: '',
        traceparent: '',
        tracestate: '',
      },
    ]);
    h.settle();
    expect(kinds(take())).toEqual([]);
  });

  it('never comes for a submit whose commit failed', () => {
    const { h, take } = observed();
    h.submit();
    h.failNextCommits(1);
    h.commit();
    h.settle();
    expect(kinds(take())).toEqual([]);
  });

  it('comes once per task when several are inserted in one commit', () => {
    const { h, take } = observed();
    const ids = [h.submit().id, h.submit().id, h.submit().id];
    h.commit();
    expect(taskEvents(take(), 'submitted').map((e) => e.taskId)).toEqual(ids);
  });

  it('a task assigned at once is reported assigned (with the worker zone) and, after its commit, submitted', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    h.settle();
    take();
    const t = h.submit({ producerZone: 'zone-p' });
    // Nothing before the commit; then the assignment (decided at submit) and the durable insert.
    expect(h.events).toEqual([]);
    const [assigned, submitted, ...rest] = taskEvents(take());
    expect(rest).toEqual([]);
    expect(assigned).toMatchObject({ kind: 'assigned', taskId: t.id, workerZone: 'zone-w' });
    expect(submitted).toMatchObject({ kind: 'submitted', taskId: t.id, producerZone: 'zone-p', dispatcherZone: 'zone-d' });
    expect(w.heldCount).toBe(1);
  });
});

describe('assigned', () => {
  it('an attempt claimed for a session is reported with the worker and dispatcher zones', () => {
    const { h, take } = observed();
    const t = h.submit({ producerZone: 'zone-p' });
    h.settle();
    take();
    h.clock.advance(100);
    const w = h.open({ zone: 'zone-w' });
    const [a] = h.dispatch();
    expect(a!.sessionId).toBe(w.id);
    expect(taskEvents(take())).toEqual([
      {
        kind: 'assigned',
        taskId: t.id,
        queue: 'q',
        attempt: 1,
        atMs: T0 + 100,
        createdMs: T0,
        producerZone: 'zone-p',
        dispatcherZone: 'zone-d',
        workerZone: 'zone-w',
        traceparent: '',
        tracestate: '',
      },
    ]);
  });
});

describe('started', () => {
  it('the first update of an attempt reports started with assignedMs and the times of the fake clock', () => {
    const { h, take } = observed();
    const t = h.submit({ producerZone: 'zone-p' });
    h.settle();
    h.clock.advance(100); // submit at T0, assigned at T0 + 100
    const w = h.open({ zone: 'zone-w' });
    const [a] = h.dispatch();
    take();
    h.clock.advance(50); // first update at T0 + 150
    expect(w.running(a!, 3).result).toBe('ACCEPTED');
    expect(take()).toEqual([
      {
        kind: 'started',
        taskId: t.id,
        queue: 'q',
        attempt: 1,
        atMs: T0 + 150,
        createdMs: T0,
        assignedMs: T0 + 100,
        producerZone: 'zone-p',
        dispatcherZone: 'zone-d',
        workerZone: 'zone-w',
        traceparent: '',
        tracestate: '',
      },
    ]);
  });

  it('comes once per attempt: later updates of the attempt do not repeat it', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w);
    take();
    w.running(a, 3);
    w.running(a, 4, 500);
    h.clock.advance(10);
    w.running(a, 5, 900);
    expect(kinds(take())).toEqual(['started']);
  });

  it('a first update that completes the attempt reports started, then finished', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w);
    take();
    h.clock.advance(20);
    w.complete(a, 3);
    const events = taskEvents(take());
    expect(events.map((e) => [e.kind, e.atMs])).toEqual([
      ['started', T0 + 20],
      ['finished', T0 + 20],
    ]);
  });
});

describe('finished and retried', () => {
  it('COMPLETED reports finished COMPLETED with no reason', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w, { producerZone: 'zone-p' });
    w.running(a, 3);
    take();
    h.clock.advance(1_000);
    w.complete(a, 4);
    expect(take()).toEqual([
      {
        kind: 'finished',
        outcome: 'COMPLETED',
        reason: '',
        taskId: a.taskId,
        queue: 'q',
        attempt: 1,
        atMs: T0 + 1_000,
        createdMs: T0,
        producerZone: 'zone-p',
        dispatcherZone: 'zone-d',
        workerZone: 'zone-w',
        traceparent: '',
        tracestate: '',
      },
    ]);
  });

  it('a retryable FAILED reports retried; once attempts run out, finished FAILED', () => {
    const { h, take } = observed({ core: NO_BACKOFF });
    const w = h.open({ zone: 'zone-w' });
    const a1 = submitAndAssign(h, w, { maxAttempts: 2 });
    w.running(a1, 3);
    take();
    w.fail(a1, 4, errorInfo('HANDLER_FAILED', 'boom'));
    // Without backoff the retry is assigned again in the same turn.
    expect(take()).toEqual([
      expect.objectContaining({ kind: 'retried', taskId: a1.taskId, attempt: 1, reason: 'HANDLER_FAILED', workerZone: 'zone-w', dispatcherZone: 'zone-d' }),
      expect.objectContaining({ kind: 'assigned', taskId: a1.taskId, attempt: 2 }),
    ]);

    const [a2] = h.dispatch();
    expect(a2).toMatchObject({ taskId: a1.taskId, attempt: 2 });
    h.clock.advance(5);
    w.running(a2!, a2!.version + 1);
    expect(taskEvents(take()).map((e) => [e.kind, e.attempt])).toEqual([['started', 2]]);
    w.fail(a2!, a2!.version + 2, errorInfo('HANDLER_FAILED', 'boom again'));
    expect(take()).toEqual([expect.objectContaining({ kind: 'finished', outcome: 'FAILED', reason: 'HANDLER_FAILED', taskId: a1.taskId, attempt: 2, workerZone: 'zone-w' })]);
  });

  it('a non-retryable FAILED reports finished FAILED at once, with the worker\'s reason', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w, { maxAttempts: 5 });
    w.running(a, 3);
    take();
    w.fail(a, 4, { ...errorInfo('HANDLER_FAILED', 'bad input'), reason: 'INVALID_ARGUMENT', retryable: false });
    expect(taskEvents(take()).map((e) => [e.kind, 'outcome' in e ? e.outcome : '', 'reason' in e ? e.reason : ''])).toEqual([['finished', 'FAILED', 'INVALID_ARGUMENT']]);
  });

  it('a session that ends while holding an attempt reports retried LEASE_LOST and sessionEnded', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w);
    take();
    h.close(w);
    expect(take().map((e) => [e.kind, 'reason' in e ? e.reason : ''])).toEqual([
      ['retried', 'LEASE_LOST'],
      ['sessionEnded', ''],
    ]);
    expect(a.task.state).toBe('PENDING');
  });

  it('a cancel reports finished CANCELLED', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w);
    take();
    h.cancel(a.taskId, 'not needed');
    expect(take()).toEqual([expect.objectContaining({ kind: 'finished', outcome: 'CANCELLED', reason: 'CANCELLED', taskId: a.taskId, workerZone: 'zone-w' })]);
  });

  it('an attempt that times out reports retried ATTEMPT_TIMEOUT', () => {
    const { h, take } = observed({ core: NO_BACKOFF });
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 1_000 });
    w.running(a, 3);
    take();
    h.clock.advance(1_000);
    h.engine.touch(w.session);
    h.engine.tick();
    h.collect();
    expect(taskEvents(take()).map((e) => [e.kind, e.attempt, 'reason' in e ? e.reason : ''])).toEqual([
      ['retried', 1, 'ATTEMPT_TIMEOUT'],
    ]);
  });
});

describe('updateRefused', () => {
  it('a sequence gap reports its reason and the zones', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w);
    w.running(a, 3);
    take();
    h.clock.advance(3);
    const ack = w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 4 }, w.nextSequenceId + 1);
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'SEQUENCE_GAP' });
    expect(take()).toEqual([{ kind: 'updateRefused', reason: 'SEQUENCE_GAP', dispatcherZone: 'zone-d', workerZone: 'zone-w', atMs: T0 + 3 }]);
  });

  it('a refused first update still proves the worker read its assignment: started, then updateRefused', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w);
    take();
    expect(w.send({ taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 }, 2).reason).toBe('SEQUENCE_GAP');
    expect(kinds(take())).toEqual(['started', 'updateRefused']);
    expect(w.running(a, 3).result).toBe('ACCEPTED');
    expect(kinds(take())).toEqual([]);
  });

  it('a stale version reports STALE_VERSION', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w);
    w.running(a, 3);
    take();
    expect(w.running(a, 3, 500).reason).toBe('STALE_VERSION');
    expect(take()).toEqual([expect.objectContaining({ kind: 'updateRefused', reason: 'STALE_VERSION' })]);
  });

  it('an accepted update or a duplicate reports no refusal', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w);
    const update = { taskId: a.taskId, attempt: 1, status: 'RUNNING', version: 3 };
    w.send(update, 1);
    expect(w.send(update, 1).result).toBe('DUPLICATE');
    expect(kinds(take()).filter((k) => k === 'updateRefused')).toEqual([]);
  });
});

describe('rtt', () => {
  it('a Pong answering the outstanding heartbeat reports the measured round trip', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    h.advance(15_000); // the seed's 15 s heartbeat: an idle stream gets a Ping
    const [ping] = h.takePings();
    expect(ping).toMatchObject({ sessionId: w.id, sentMs: T0 + 15_000 });
    take();
    h.clock.advance(42);
    h.engine.touch(w.session);
    h.engine.pong(w.session, ping!.nonce);
    h.collect();
    expect(take()).toEqual([{ kind: 'rtt', dispatcherZone: 'zone-d', workerZone: 'zone-w', rttMs: 42, atMs: T0 + 15_042 }]);
  });

  it('a Pong with another nonce, or a second Pong, reports nothing', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    h.advance(15_000);
    const [ping] = h.takePings();
    take();
    h.engine.pong(w.session, ping!.nonce + 1);
    h.collect();
    expect(take()).toEqual([]);
    h.engine.pong(w.session, ping!.nonce);
    h.engine.pong(w.session, ping!.nonce);
    h.collect();
    expect(kinds(take())).toEqual(['rtt']);
  });
});

describe('sessionEnded', () => {
  it('closing a session reports its lifetime and cause', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    h.clock.advance(5_000);
    take();
    h.close(w, 'STREAM_ENDED');
    expect(take()).toEqual([{ kind: 'sessionEnded', dispatcherZone: 'zone-d', workerZone: 'zone-w', cause: 'STREAM_ENDED', lifetimeMs: 5_000, atMs: T0 + 5_000 }]);
    h.close(w, 'STREAM_ENDED');
    expect(take()).toEqual([]);
  });

  it('a drained session reports DRAINED', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    h.clock.advance(250);
    take();
    h.drain(w);
    expect(take()).toEqual([expect.objectContaining({ kind: 'sessionEnded', cause: 'DRAINED', lifetimeMs: 250 })]);
  });

  it('a silent session closed by the engine reports IDLE', () => {
    const { h, take } = observed();
    h.open({ zone: 'zone-w' });
    h.advance(45_000); // the seed's 45 s liveness
    expect(take().filter((e) => e.kind === 'sessionEnded')).toEqual([expect.objectContaining({ cause: 'IDLE', lifetimeMs: 45_000, workerZone: 'zone-w' })]);
  });
});

describe('trace context', () => {
  it('every task event carries the traceparent and tracestate of the spec', () => {
    const { h, take } = observed({ core: NO_BACKOFF });
    const w = h.open({ zone: 'zone-w' });
    const a1 = submitAndAssign(h, w, { traceparent: TRACEPARENT, tracestate: TRACESTATE, maxAttempts: 2 });
    w.running(a1, 3);
    w.fail(a1, 4, errorInfo('HANDLER_FAILED', 'boom'));
    const [a2] = h.dispatch();
    w.complete(a2!, a2!.version + 1);
    const events = taskEvents(take());
    expect(events.map((e) => e.kind)).toEqual(['submitted', 'assigned', 'started', 'retried', 'assigned', 'started', 'finished']);
    for (const e of events) expect([e.traceparent, e.tracestate]).toEqual([TRACEPARENT, TRACESTATE]);
  });

  it('an untraced task has empty trace fields', () => {
    const { h, take } = observed();
    h.submit();
    h.commit();
    expect(taskEvents(take()).map((e) => [e.traceparent, e.tracestate])).toEqual([['', '']]);
  });
});

/**
 * Events of a commit that failed. The adapter keeps the effects taken before
 * a failed commit and hands them over after the next durable one (the
 * harness does the same; see also src/server/dispatcher.ts deliverAll), but
 * commitFailed drops new tasks and tasks taken in from a sweep, whose events
 * were already appended. These tests state the contract of task-events.ts
 * ("handed over once the commit that carried them is durable") and fail on
 * the engine before the fix: commitFailed now returns the tasks it dropped,
 * and the adapter drops their events.
 */
describe('events of a commit that failed', () => {
  it('a task assigned at once whose insert failed is never reported (no assigned event for a task that does not exist)', () => {
    const { h, take } = observed();
    h.open({ zone: 'zone-w' });
    h.settle();
    take();
    const t = h.submit();
    h.failNextCommits(1);
    h.commit();
    h.settle();
    expect(h.store.get(t.id)).toBeUndefined();
    expect(taskEvents(take()).filter((e) => e.taskId === t.id)).toEqual([]);
  });

  it('a schedule-to-start failure whose first commit failed is reported finished once', () => {
    const { h, take } = observed();
    const t = h.submit({ scheduleToStartTimeoutMs: 1_000 });
    h.settle();
    take();
    h.failNextCommits(1);
    h.advance(1_000); // the sweep finds it, its write fails, the engine drops it
    h.advance(1); // the next sweep finds it again
    expect(t.state).toBe('FAILED');
    expect(taskEvents(take(), 'finished').map((e) => [e.taskId, e.outcome])).toEqual([[t.id, 'FAILED']]);
  });

  it('a lease taken over by a sweep whose first commit failed is reported retried once', () => {
    const store = new MemoryStoreCore();
    store.commit({
      nowMs: T0 - 1,
      owner: 'seed#1',
      dispatcherZone: '',
      leaseExpiresMs: 0,
      spilloverDelayMs: 0,
      idempotencyRetentionMs: 86_400_000,
      inserts: [taskRecord('held', { state: 'RUNNING', owner: 'ghost#1', sessionId: 's', workerId: 'w', version: 3, leaseExpiresMs: T0 - 1, attemptDeadlineMs: T0 + 50_000 })],
      writes: [],
      claims: [],
    });
    const { h, take } = observed({ store });
    h.failNextCommits(1);
    h.sweep();
    h.sweep();
    expect(h.task('held')).toMatchObject({ state: 'PENDING', attempt: 2 });
    expect(taskEvents(take(), 'retried').map((e) => [e.taskId, e.reason])).toEqual([['held', 'LEASE_LOST']]);
  });

  it('an update whose commit failed is reported once (its write is retried, not dropped)', () => {
    const { h, take } = observed();
    const w = h.open({ zone: 'zone-w' });
    const a = submitAndAssign(h, w);
    w.running(a, 3);
    h.settle();
    take();
    w.complete(a, 4);
    h.failNextCommits(1);
    h.commit();
    h.settle();
    expect(h.store.get(a.taskId)?.state).toBe('COMPLETED');
    expect(taskEvents(take(), 'finished').map((e) => e.outcome)).toEqual(['COMPLETED']);
  });
});
