import { afterEach, describe, expect, it } from 'vitest';
import { emptyOutcome, type CommitBatch, type CommitOutcome } from '../../src/core/commit-batch';
import type { TaskRecord } from '../../src/core/task-fields';
import { Persister, type AfterCommit, type PersisterEngine } from '../../src/server/persister';
import { taskRecord } from '../support/task-record';

/** An engine stand-in: a list of records the test fills (written as inserts), and what the persister told it. */
function fakeEngine(): PersisterEngine & { dirty: TaskRecord[]; succeeded: string[][]; failed: number; reconciled: string[][] } {
  let inFlight: TaskRecord[] | undefined;
  const engine = {
    dirty: [] as TaskRecord[],
    succeeded: [] as string[][],
    failed: 0,
    reconciled: [] as string[][],
    beginCommit(): CommitBatch | undefined {
      if (engine.dirty.length === 0) return undefined;
      inFlight = engine.dirty;
      engine.dirty = [];
      return { nowMs: 0, owner: 'o#1', dispatcherZone: '', leaseExpiresMs: 0, spilloverDelayMs: 0, idempotencyRetentionMs: 60_000, inserts: inFlight, writes: [], claims: [] };
    },
    commitSucceeded(_outcome: CommitOutcome): TaskRecord[] {
      const records = inFlight ?? [];
      inFlight = undefined;
      engine.succeeded.push(records.map((r) => r.id));
      return records;
    },
    commitFailed(): ReadonlySet<string> {
      engine.failed += 1;
      // As the engine does with changes (not new tasks): written again next time.
      engine.dirty.push(...(inFlight ?? []));
      inFlight = undefined;
      return new Set();
    },
    reconcile(owned: readonly TaskRecord[]): void {
      engine.reconciled.push(owned.map((r) => r.id));
    },
    get hasWork(): boolean {
      return engine.dirty.length > 0;
    },
  };
  return engine;
}

/** A store that records each commit; `failNext` makes the next commit reject. */
function fakeStore(): { commits: string[][]; failNext: boolean; ownedCalls: number; commit(b: CommitBatch): Promise<CommitOutcome>; owned(o: string): Promise<TaskRecord[]> } {
  const store = {
    commits: [] as string[][],
    failNext: false,
    ownedCalls: 0,
    async commit(batch: CommitBatch): Promise<CommitOutcome> {
      if (store.failNext) {
        store.failNext = false;
        throw new Error('disk full');
      }
      store.commits.push(batch.inserts.map((r) => r.id));
      return emptyOutcome(0);
    },
    async owned(): Promise<TaskRecord[]> {
      store.ownedCalls += 1;
      return [taskRecord('held-here')];
    },
  };
  return store;
}

interface Setup {
  persister: Persister;
  engine: ReturnType<typeof fakeEngine>;
  store: ReturnType<typeof fakeStore>;
  errors: Error[];
  delivered: { count: number };
  /** Throws from the watcher hook while true. */
  watcherThrows: { value: boolean };
}

const persisters: Persister[] = [];
afterEach(() => {
  for (const p of persisters.splice(0)) p.close();
});

function setup(): Setup {
  const engine = fakeEngine();
  const store = fakeStore();
  const errors: Error[] = [];
  const watcherThrows = { value: false };
  const delivered = { count: 0 };
  const persister = new Persister(engine, store, 'o#1', {
    beforeCommit: () => undefined,
    committed: () => {
      if (watcherThrows.value) throw new Error('watcher exploded');
    },
    delivered: () => {
      delivered.count += 1;
    },
    onError: (error) => errors.push(error),
    call: (fn) => fn(),
  });
  persisters.push(persister);
  return { persister, engine, store, errors, watcherThrows, delivered };
}

/** Records every call of a callback, and resolves once it was called. */
function recorder(throws?: string): AfterCommit & { calls: (Error | undefined)[]; called: Promise<void> } {
  let resolve!: () => void;
  const called = new Promise<void>((r) => (resolve = r));
  const fn = ((error?: Error) => {
    fn.calls.push(error);
    resolve();
    if (throws !== undefined) throw new Error(throws);
  }) as AfterCommit & { calls: (Error | undefined)[]; called: Promise<void> };
  fn.calls = [];
  fn.called = called;
  return fn;
}

describe('Persister post-commit callbacks', () => {
  it('a throwing callback is reported, and every callback hears of the success exactly once', async () => {
    const { persister, engine, store, errors, delivered } = setup();
    engine.dirty.push(taskRecord('t-1'));
    const before = recorder();
    const thrower = recorder('handler bug');
    const after = recorder();
    persister.afterCommit(before);
    persister.afterCommit(thrower);
    persister.afterCommit(after);
    await Promise.all([before.called, thrower.called, after.called]);
    // A later commit must not call any of them again.
    engine.dirty.push(taskRecord('t-2'));
    await persister.barrier();

    expect(before.calls).toEqual([undefined]);
    expect(thrower.calls).toEqual([undefined]);
    expect(after.calls).toEqual([undefined]);
    expect(store.commits).toEqual([['t-1'], ['t-2']]);
    expect(engine.failed).toBe(0);
    expect(persister.commits).toBe(2);
    expect(persister.callbackErrors).toBe(1);
    expect(delivered.count).toBe(2);
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('handler bug')]);
    expect(errors[0]!.message).toContain('the outcome stands');
  });

  it('a throwing watcher does not turn a durable commit into a failure', async () => {
    const { persister, engine, store, errors, watcherThrows } = setup();
    watcherThrows.value = true;
    engine.dirty.push(taskRecord('t-1'));
    const callback = recorder();
    persister.afterCommit(callback);
    await callback.called;
    watcherThrows.value = false;
    await persister.barrier();

    expect(callback.calls).toEqual([undefined]);
    // Written once, not put back and written again.
    expect(store.commits).toEqual([['t-1']]);
    expect(engine.failed).toBe(0);
    expect(engine.succeeded).toEqual([['t-1']]);
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('watcher exploded')]);
  });

  it('after a failed commit every callback hears the error once, even when one of them throws; the next run reconciles first', async () => {
    const { persister, engine, store, errors, delivered } = setup();
    store.failNext = true;
    engine.dirty.push(taskRecord('t-1'));
    const thrower = recorder('rethrown');
    const other = recorder();
    persister.afterCommit(thrower);
    persister.afterCommit(other);
    await Promise.all([thrower.called, other.called]);

    expect(thrower.calls).toEqual([expect.objectContaining({ message: 'disk full' })]);
    expect(other.calls).toEqual([expect.objectContaining({ message: 'disk full' })]);
    expect(errors.map((e) => e.message)).toEqual(['disk full', expect.stringContaining('rethrown')]);
    expect(engine.failed).toBe(1);
    expect(delivered.count).toBe(0);
    await persister.barrier();
    // Its outcome was unknown: what the store says this dispatcher holds is checked before the retry.
    expect(store.ownedCalls).toBe(1);
    expect(engine.reconciled).toEqual([['held-here']]);
    expect(store.commits).toEqual([['t-1']]);
    expect(thrower.calls.length).toBe(1);
    expect(other.calls.length).toBe(1);
  });
});
