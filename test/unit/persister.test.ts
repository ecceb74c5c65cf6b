import { afterEach, describe, expect, it } from 'vitest';
import type { TaskRecord } from '../../src/core/task-fields';
import { Persister, type AfterCommit, type PersisterEngine } from '../../src/server/persister';
import type { TaskStore } from '../../src/store/task-store';
import { taskRecord } from '../support/task-record';

/** An engine stand-in: a dirty list the test fills, and what the persister told it. */
function fakeEngine(): PersisterEngine & { dirty: TaskRecord[]; committedCalls: TaskRecord[][]; restored: TaskRecord[][] } {
  const engine = {
    dirty: [] as TaskRecord[],
    committedCalls: [] as TaskRecord[][],
    restored: [] as TaskRecord[][],
    takeDirty(): TaskRecord[] {
      const out = engine.dirty;
      engine.dirty = [];
      return out;
    },
    restoreDirty(records: TaskRecord[]): void {
      engine.restored.push(records);
      engine.dirty.push(...records);
    },
    committed(records: TaskRecord[]): void {
      engine.committedCalls.push(records);
    },
    get hasDirty(): boolean {
      return engine.dirty.length > 0;
    },
  };
  return engine;
}

/** A store that records each commit; `failNext` makes the next commit reject. */
function fakeStore(): TaskStore & { commits: string[][]; failNext: boolean } {
  const store = {
    commits: [] as string[][],
    failNext: false,
    async open(): Promise<void> {},
    async commit(records: readonly TaskRecord[]): Promise<void> {
      if (store.failNext) {
        store.failNext = false;
        throw new Error('disk full');
      }
      store.commits.push(records.map((r) => r.id));
    },
    async get(): Promise<undefined> {
      return undefined;
    },
    async findByIdempotencyKey(): Promise<undefined> {
      return undefined;
    },
    async loadUnfinished(): Promise<TaskRecord[]> {
      return [];
    },
    async purge(): Promise<number> {
      return 0;
    },
    async close(): Promise<void> {},
  };
  return store;
}

interface Setup {
  persister: Persister;
  engine: ReturnType<typeof fakeEngine>;
  store: ReturnType<typeof fakeStore>;
  errors: Error[];
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
  const persister = new Persister(engine, store, () => 60_000, {
    beforeCommit: () => undefined,
    committed: () => {
      if (watcherThrows.value) throw new Error('watcher exploded');
    },
    onError: (error) => errors.push(error),
  });
  persisters.push(persister);
  return { persister, engine, store, errors, watcherThrows };
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
    const { persister, engine, store, errors } = setup();
    engine.dirty.push(taskRecord('t-1'));
    const before = recorder();
    const thrower = recorder('handler bug');
    const after = recorder();
    persister.afterCommit(before);
    persister.afterCommit(thrower);
    persister.afterCommit(after);
    await Promise.all([before.called, thrower.called, after.called]);
    // A later commit must not call any of them again (the bug called them with an error).
    engine.dirty.push(taskRecord('t-2'));
    await persister.barrier();

    expect(before.calls).toEqual([undefined]);
    expect(thrower.calls).toEqual([undefined]);
    expect(after.calls).toEqual([undefined]);
    expect(store.commits).toEqual([['t-1'], ['t-2']]);
    expect(engine.restored).toEqual([]);
    expect(persister.commits).toBe(2);
    expect(persister.callbackErrors).toBe(1);
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
    // Written once, not put back as dirty and written again.
    expect(store.commits).toEqual([['t-1']]);
    expect(engine.restored).toEqual([]);
    expect(engine.committedCalls.map((rs) => rs.map((r) => r.id))).toEqual([['t-1']]);
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('watcher exploded')]);
  });

  it('after a failed commit every callback hears the error once, even when one of them throws', async () => {
    const { persister, engine, store, errors } = setup();
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
    // The records were put back; the retry writes them.
    expect(engine.restored.map((rs) => rs.map((r) => r.id))).toEqual([['t-1']]);
    await persister.barrier();
    expect(store.commits).toEqual([['t-1']]);
    expect(thrower.calls.length).toBe(1);
    expect(other.calls.length).toBe(1);
  });
});
