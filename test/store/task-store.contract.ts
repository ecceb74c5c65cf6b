import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClaimGroup, CommitBatch, CommitOutcome, StateWrite } from '../../src/core/commit-batch';
import { DEFINITION_FIELDS, type TaskRecord } from '../../src/core/task-fields';
import type { TaskState } from '../../src/core/task-state';
import { errorInfo } from '../../src/errors';
import type { TaskStore } from '../../src/store/task-store';
import { taskRecord } from '../support/task-record';

/** A fixed instant; every time in the suite is relative to it. Nothing sleeps. */
const T0 = 1_700_000_000_000;
const RETENTION_MS = 60_000;
const ME = 'dispatcher-a#1';

export { taskRecord };

/** A record no adapter can write: reading its payload throws. */
function unreadable(record: TaskRecord): TaskRecord {
  const copy = { ...record };
  Object.defineProperty(copy, 'payload', {
    enumerable: true,
    get(): never {
      throw new Error('unreadable payload');
    },
  });
  return copy;
}

/** Bytes as plain arrays, so a Buffer and a Uint8Array with the same bytes compare equal. */
function plain(record: TaskRecord | undefined): unknown {
  if (!record) return record;
  expect(record.payload).toBeInstanceOf(Uint8Array);
  if (record.result !== null) expect(record.result).toBeInstanceOf(Uint8Array);
  return { ...record, payload: [...record.payload], result: record.result && [...record.result] };
}

function batch(overrides: Partial<CommitBatch> = {}): CommitBatch {
  return {
    nowMs: T0,
    owner: ME,
    dispatcherZone: 'a',
    leaseExpiresMs: T0 + 10_000,
    spilloverDelayMs: 0,
    idempotencyRetentionMs: RETENTION_MS,
    inserts: [],
    writes: [],
    claims: [],
    ...overrides,
  };
}

function write(record: TaskRecord, expectVersion: number, requeue: StateWrite['requeue'] = 'none'): StateWrite {
  return { record, expectVersion, requeue };
}

function group(queue: string, zone: string, slots: number, session = 's'): ClaimGroup {
  return { queue, zone, slots: Array.from({ length: slots }, (_, i) => ({ sessionId: `${session}-${i}`, workerId: `w-${session}` })) };
}

/** An ASSIGNED task held by `owner`. */
function held(id: string, owner = ME, overrides: Partial<TaskRecord> = {}): TaskRecord {
  return taskRecord(id, { state: 'ASSIGNED', owner, sessionId: 's-1', workerId: 'w', leaseExpiresMs: T0 + 10_000, attemptDeadlineMs: T0 + 30_000, version: 2, ...overrides });
}

/**
 * The behaviour every TaskStore adapter must have. `make` returns a new,
 * empty, not yet opened store; the suite opens it before and closes it after
 * each test.
 */
export function describeTaskStoreContract(name: string, make: () => Promise<TaskStore>): void {
  describe(`TaskStore contract: ${name}`, () => {
    let store: TaskStore;
    const commit = (b: Partial<CommitBatch>): Promise<CommitOutcome> => store.commit(batch(b));
    /** Enters another dispatcher, then this one again (in an exclusive store, the last to register is the one live process). */
    const registerOther = async (owner: string, leaseExpiresMs: number): Promise<void> => {
      await store.register({ owner, dispatcherId: owner.split('#')[0]!, zone: 'b', address: '' }, T0, leaseExpiresMs);
      await store.register({ owner: ME, dispatcherId: 'dispatcher-a', zone: 'a', address: '' }, T0, T0 + 10_000);
    };
    const claimIds = async (b: Partial<CommitBatch>): Promise<string[][]> => (await commit(b)).claimed.map((list) => list.map((c) => c.task.id));

    beforeEach(async () => {
      store = await make();
      await store.open();
      await store.register({ owner: ME, dispatcherId: 'dispatcher-a', zone: 'a', address: '127.0.0.1:1' }, T0, T0 + 10_000);
    });

    afterEach(async () => {
      await store.close();
    });

    describe('inserts and get', () => {
      it('round-trips every field', async () => {
        const record = held('t-1', ME, {
          queue: 'images',
          priority: -7,
          payload: new Uint8Array([0, 255, 0, 0, 128, 0]),
          contentType: 'application/x-protobuf',
          labels: { zone: 'eu-1a', ключ: 'значение', empty: '' },
          preferredZone: 'eu-1a',
          producerZone: 'eu-1b',
          acceptedZone: 'eu-1c',
          idempotencyKey: 'key-1',
          state: 'RUNNING',
          attempt: 3,
          maxAttempts: 3,
          version: 41,
          dispatcherZone: 'eu-1c',
          workerZone: 'eu-1a',
          attemptTimeoutMs: 12_345,
          scheduleToStartTimeoutMs: 600_000,
          notBeforeMs: T0 + 5,
          readyAtMs: T0 + 5,
          startDeadlineMs: T0 + 600_005,
          createdMs: T0,
          updatedMs: T0 + 99,
          sessionId: 's-1',
          workerId: 'w-1',
          attemptDeadlineMs: T0 + 12_345,
          progressPermille: 999,
          result: new Uint8Array([0, 0, 7, 0]),
          error: errorInfo('HANDLER_FAILED', 'boom: "quoted" \n newline'),
        });
        await commit({ inserts: [record] });
        expect(plain(await store.get('t-1'))).toEqual(plain(record));
      });

      it('round-trips an empty payload, empty labels, a null result and a null error', async () => {
        const record = taskRecord('t-1', { payload: new Uint8Array(0), labels: {}, result: null, error: null });
        await commit({ inserts: [record] });
        const got = await store.get('t-1');
        expect(plain(got)).toEqual(plain(record));
        expect(got?.result).toBeNull();
        expect(got?.error).toBeNull();
      });

      it('returns undefined for an unknown id', async () => {
        expect(await store.get('nope')).toBeUndefined();
      });

      it('writes every insert of a batch, and accepts an empty batch', async () => {
        expect(await commit({})).toMatchObject({ claimed: [], nextClaimAtMs: [] });
        await commit({ inserts: [taskRecord('a'), taskRecord('b'), taskRecord('c')] });
        expect((await store.getMany(['a', 'b', 'c', 'nope'])).map((r) => r.id).sort()).toEqual(['a', 'b', 'c']);
      });

      it('skips the insert of an id that exists: a retried commit that had landed changes nothing', async () => {
        await commit({ inserts: [taskRecord('t-1', { labels: { a: '1' } })] });
        const outcome = await commit({ inserts: [taskRecord('t-1', { labels: { b: '2' }, state: 'COMPLETED' })] });
        expect(outcome.duplicates.size).toBe(0);
        expect((await store.get('t-1'))?.labels).toEqual({ a: '1' });
        expect((await store.get('t-1'))?.state).toBe('PENDING');
      });

      it('copies records in and out: later mutation of either side changes nothing stored', async () => {
        const record = taskRecord('t-1', { labels: { a: '1' }, result: new Uint8Array([5]) });
        await commit({ inserts: [record] });
        record.payload[0] = 42;
        record.labels['a'] = 'changed';
        const got = await store.get('t-1');
        if (!got) throw new Error('missing');
        got.payload[1] = 42;
        got.labels['b'] = 'added';
        got.state = 'RUNNING';
        expect(plain(await store.get('t-1'))).toEqual(plain(taskRecord('t-1', { labels: { a: '1' }, result: new Uint8Array([5]) })));
      });

      it('writes nothing of a commit that rejects: no insert, no write, no key', async () => {
        const before = held('a');
        await commit({ inserts: [before] });
        const failing = batch({
          inserts: [taskRecord('b', { idempotencyKey: 'key-b' }), unreadable(taskRecord('c'))],
          writes: [write({ ...before, state: 'RUNNING', version: 3 }, 2)],
        });
        await expect(store.commit(failing)).rejects.toThrow();
        expect(plain(await store.get('a'))).toEqual(plain(before));
        expect(await store.get('b')).toBeUndefined();
        expect(await store.get('c')).toBeUndefined();
        // The key was not taken: a new task can have it.
        const outcome = await commit({ inserts: [taskRecord('d', { idempotencyKey: 'key-b' })] });
        expect(outcome.duplicates.size).toBe(0);
        expect((await store.get('d'))?.id).toBe('d');
      });
    });

    describe('pendingCount: the waiting tasks of one queue, for the queue caps', () => {
      it('counts PENDING tasks of that queue, delayed ones included, and no held, finished or other-queue task', async () => {
        await commit({
          inserts: [
            taskRecord('p1', { queue: 'q' }),
            taskRecord('p2', { queue: 'q', notBeforeMs: T0 + 3_600_000, readyAtMs: T0 + 3_600_000 }),
            taskRecord('other', { queue: 'q2' }),
            held('h', ME, { queue: 'q' }),
            taskRecord('done', { queue: 'q', state: 'COMPLETED', version: 3 }),
          ],
        });
        expect(await store.pendingCount('q')).toBe(2);
        expect(await store.pendingCount('q2')).toBe(1);
        expect(await store.pendingCount('none')).toBe(0);
      });
    });

    describe('idempotency keys: the store refuses a second task with a held key', () => {
      it('does not insert a task whose key another task holds, and names that task', async () => {
        await commit({ inserts: [taskRecord('first', { idempotencyKey: 'k' })] });
        const outcome = await commit({ inserts: [taskRecord('second', { idempotencyKey: 'k' }), taskRecord('other', { idempotencyKey: 'k2' })] });
        expect([...outcome.duplicates]).toEqual([['second', 'first']]);
        expect(await store.get('second')).toBeUndefined();
        expect((await store.get('other'))?.id).toBe('other');
      });

      it('holds the key until createdMs + retention; from then on a new task takes it', async () => {
        await commit({ inserts: [taskRecord('old', { idempotencyKey: 'k', createdMs: T0 })] });
        const early = await commit({ nowMs: T0 + RETENTION_MS - 1, inserts: [taskRecord('early', { idempotencyKey: 'k' })] });
        expect(early.duplicates.get('early')).toBe('old');
        const later = T0 + RETENTION_MS;
        const outcome = await commit({ nowMs: later, inserts: [taskRecord('new', { idempotencyKey: 'k', createdMs: later })] });
        expect(outcome.duplicates.size).toBe(0);
        const again = await commit({ nowMs: later + 1, inserts: [taskRecord('again', { idempotencyKey: 'k', createdMs: later + 1 })] });
        expect(again.duplicates.get('again')).toBe('new');
        expect((await store.get('old'))?.id).toBe('old');
      });

      it('never matches the empty key', async () => {
        await commit({ inserts: [taskRecord('a', { idempotencyKey: '' })] });
        const outcome = await commit({ inserts: [taskRecord('b', { idempotencyKey: '' })] });
        expect(outcome.duplicates.size).toBe(0);
      });

      it('heldKeys names the keys a task holds, until createdMs + retention (the queue caps answer a resubmit with it)', async () => {
        await commit({ inserts: [taskRecord('old', { idempotencyKey: 'k', createdMs: T0 }), taskRecord('other', { idempotencyKey: 'k2', createdMs: T0 + 10 })] });
        expect([...(await store.heldKeys(['k', 'k2', 'unknown', ''], T0 + 1))].sort()).toEqual(['k', 'k2']);
        expect([...(await store.heldKeys(['k', 'k2'], T0 + RETENTION_MS))]).toEqual(['k2']);
        expect((await store.heldKeys([], T0)).size).toBe(0);
      });

      it('a retried insert of the same task is not a duplicate of itself', async () => {
        await commit({ inserts: [taskRecord('t', { idempotencyKey: 'k' })] });
        const outcome = await commit({ inserts: [taskRecord('t', { idempotencyKey: 'k' })] });
        expect(outcome.duplicates.size).toBe(0);
      });

      it('frees the key of a task that was purged', async () => {
        await commit({ inserts: [taskRecord('t', { idempotencyKey: 'k', state: 'COMPLETED', updatedMs: T0 })] });
        await store.purge(T0, T0 + 1, 100);
        const outcome = await commit({ inserts: [taskRecord('u', { idempotencyKey: 'k' })] });
        expect(outcome.duplicates.size).toBe(0);
      });
    });

    describe('writes: conditional on the version read, state columns only', () => {
      it('applies the state fields and never the definition', async () => {
        const record = held('t');
        await commit({ inserts: [record] });
        const next: TaskRecord = {
          ...record,
          queue: 'changed',
          payload: new Uint8Array([9]),
          labels: { changed: 'yes' },
          maxAttempts: 99,
          state: 'COMPLETED',
          version: 5,
          owner: '',
          sessionId: '',
          result: new Uint8Array([7]),
          progressPermille: 1000,
          updatedMs: T0 + 50,
        };
        const outcome = await commit({ writes: [write(next, 2)] });
        expect(outcome.conflicts.size).toBe(0);
        const got = (await store.get('t'))!;
        for (const field of DEFINITION_FIELDS) expect([field, plain({ ...got })]).toEqual([field, plain({ ...got, [field]: record[field] } as TaskRecord)]);
        expect([got.state, got.version, got.owner, got.progressPermille, [...got.result!], got.updatedMs]).toEqual(['COMPLETED', 5, '', 1000, [7], T0 + 50]);
      });

      it('refuses a write whose expected version is not the stored one, and returns what is stored', async () => {
        const record = held('t');
        await commit({ inserts: [record] });
        const outcome = await commit({ writes: [write({ ...record, state: 'RUNNING', version: 9 }, 1)] });
        expect(outcome.conflicts.has('t')).toBe(true);
        expect(outcome.conflicts.get('t')?.version).toBe(2);
        expect((await store.get('t'))?.state).toBe('ASSIGNED');
      });

      it('a conflict in one write leaves the batch\'s other writes applied', async () => {
        await commit({ inserts: [held('a'), held('b')] });
        const outcome = await commit({ writes: [write({ ...held('a'), state: 'RUNNING', version: 3 }, 7), write({ ...held('b'), state: 'RUNNING', version: 3 }, 2)] });
        expect([...outcome.conflicts.keys()]).toEqual(['a']);
        expect((await store.get('b'))?.state).toBe('RUNNING');
      });

      it('counts the repetition of an applied write as applied (a retry after an unknown outcome)', async () => {
        const record = held('t');
        await commit({ inserts: [record] });
        const next = { ...record, state: 'RUNNING' as TaskState, version: 3 };
        await commit({ writes: [write(next, 2)] });
        const again = await commit({ writes: [write(next, 2)] });
        expect(again.conflicts.size).toBe(0);
        // But not one that differs in owner: that is someone else's write.
        const foreign = await commit({ writes: [write({ ...next, owner: 'other#1' }, 2)] });
        expect(foreign.conflicts.has('t')).toBe(true);
      });

      it('refuses a write for an unknown task, returning undefined', async () => {
        const outcome = await commit({ writes: [write(held('nope'), 1)] });
        expect(outcome.conflicts.has('nope')).toBe(true);
        expect(outcome.conflicts.get('nope')).toBeUndefined();
      });
    });

    describe('claims', () => {
      const ready = (id: string, overrides: Partial<TaskRecord> = {}): TaskRecord => taskRecord(id, { acceptedZone: 'a', ...overrides });

      it('takes higher priority first, FIFO within a priority, and binds each task to its slot', async () => {
        await commit({ inserts: [ready('p0a'), ready('p5a', { priority: 5 }), ready('pm1', { priority: -1 }), ready('p5b', { priority: 5 }), ready('p0b')] });
        const outcome = await commit({ claims: [group('q', 'a', 3, 's')] });
        const claimed = outcome.claimed[0]!;
        expect(claimed.map((c) => c.task.id)).toEqual(['p5a', 'p5b', 'p0a']);
        expect(claimed.map((c) => c.slot)).toEqual([0, 1, 2]);
        const first = claimed[0]!.task;
        expect(first).toMatchObject({
          state: 'ASSIGNED',
          owner: ME,
          dispatcherZone: 'a',
          workerZone: 'a',
          leaseExpiresMs: T0 + 10_000,
          sessionId: 's-0',
          workerId: 'w-s',
          attemptDeadlineMs: T0 + 30_000,
          version: 2,
          updatedMs: T0,
        });
        expect(plain(await store.get('p5a'))).toEqual(plain(first));
        expect(await claimIds({ claims: [group('q', 'a', 5)] })).toEqual([['p0b', 'pm1']]);
      });

      it('takes only ready PENDING tasks of its queue, and says when the next becomes ready', async () => {
        await commit({ inserts: [ready('later', { readyAtMs: T0 + 500 }), ready('other-queue', { queue: 'r' }), held('taken'), ready('done', { state: 'COMPLETED' }), ready('now')] });
        const outcome = await commit({ claims: [group('q', 'a', 5)] });
        expect(outcome.claimed[0]!.map((c) => c.task.id)).toEqual(['now']);
        expect(outcome.nextClaimAtMs).toEqual([T0 + 500]);
        expect(await claimIds({ nowMs: T0 + 500, claims: [group('q', 'a', 5)] })).toEqual([['later']]);
      });

      it('reports no next instant when nothing is waiting, and none after a full claim', async () => {
        await commit({ inserts: [ready('a1'), ready('a2')] });
        const full = await commit({ claims: [group('q', 'a', 1)] });
        expect(full.nextClaimAtMs).toEqual([undefined]);
        const short = await commit({ claims: [group('q', 'a', 5)] });
        expect(short.claimed[0]!.length).toBe(1);
        expect(short.nextClaimAtMs).toEqual([undefined]);
      });

      it('takes its own zone first; other zones only after the spillover delay, and says when', async () => {
        await commit({
          inserts: [
            ready('pref-b', { preferredZone: 'b', priority: 9 }),
            ready('accepted-b', { acceptedZone: 'b', priority: 8 }),
            ready('pref-a'),
            ready('accepted-a', { preferredZone: '' }),
            ready('accepted-nowhere', { acceptedZone: '' }),
          ],
        });
        const outcome = await commit({ spilloverDelayMs: 1_000, claims: [group('q', 'a', 10)] });
        expect(outcome.claimed[0]!.map((c) => c.task.id).sort()).toEqual(['accepted-a', 'accepted-nowhere', 'pref-a']);
        expect(outcome.nextClaimAtMs).toEqual([T0 + 1_000]);
        // Once the delay has passed they spill, higher priority first.
        expect(await claimIds({ nowMs: T0 + 1_000, spilloverDelayMs: 1_000, claims: [group('q', 'a', 10)] })).toEqual([['pref-b', 'accepted-b']]);
      });

      it('gives zone-b sessions the task that prefers b at once, and a task accepted in b', async () => {
        await commit({ inserts: [ready('pref-b', { preferredZone: 'b' }), ready('accepted-b', { acceptedZone: 'b' }), ready('accepted-a')] });
        // A zone-b session on a zone-a dispatcher: a task accepted by this dispatcher's zone is local too.
        expect((await claimIds({ spilloverDelayMs: 60_000, claims: [group('q', 'b', 10)] }))[0]!.sort()).toEqual(['accepted-a', 'accepted-b', 'pref-b']);
      });

      it('takes the task of its own zone before a higher-priority one that spilled', async () => {
        await commit({ inserts: [ready('spilled', { preferredZone: 'b', priority: 100 }), ready('own', { priority: 0 })] });
        expect(await claimIds({ nowMs: T0 + 5, spilloverDelayMs: 1, claims: [group('q', 'a', 1)] })).toEqual([['own']]);
      });

      it('fills every group with its at-once tasks before any group takes a spilled one', async () => {
        await commit({ inserts: [ready('for-b', { preferredZone: 'b' }), ready('for-a', { preferredZone: 'a' })] });
        // Group a comes first; its spill phase must not take the task group b takes at once.
        const ids = await claimIds({ claims: [group('q', 'a', 2, 'sa'), group('q', 'b', 1, 'sb')] });
        expect(ids).toEqual([['for-a'], ['for-b']]);
      });

      it('never gives one task to two groups of one batch', async () => {
        await commit({ inserts: [ready('x'), ready('y'), ready('z')] });
        const ids = await claimIds({ claims: [group('q', 'a', 2, 's1'), group('q', 'a', 2, 's2')] });
        expect(ids.flat().sort()).toEqual(['x', 'y', 'z']);
        expect(new Set(ids.flat()).size).toBe(3);
      });

      it('sees the batch\'s own inserts and writes: a task released in the same commit is claimable', async () => {
        const record = held('released');
        await commit({ inserts: [record] });
        const released = { ...record, state: 'PENDING' as TaskState, owner: '', sessionId: '', attempt: 2, version: 3, readyAtMs: T0 };
        const ids = await claimIds({ inserts: [ready('new')], writes: [write(released, 2, 'back')], claims: [group('q', 'a', 5)] });
        expect(ids[0]!.sort()).toEqual(['new', 'released']);
      });

      it('a retry (requeue back) goes behind the tasks of its priority already waiting; a claim given back keeps its place', async () => {
        await commit({ inserts: [ready('first'), ready('second'), ready('third')] });
        const claimed = (await commit({ claims: [group('q', 'a', 2)] })).claimed[0]!.map((c) => c.task);
        const [first, second] = claimed as [TaskRecord, TaskRecord];
        const back = { ...first, state: 'PENDING' as TaskState, owner: '', attempt: 2, version: first.version + 1 };
        const keep = { ...second, state: 'PENDING' as TaskState, owner: '', version: second.version + 1 };
        await commit({ writes: [write(back, first.version, 'back'), write(keep, second.version, 'keep')] });
        expect(await claimIds({ claims: [group('q', 'a', 3)] })).toEqual([['second', 'third', 'first']]);
      });
    });

    describe('dispatchers and the sweep', () => {
      it('returns tasks held by a dispatcher whose heartbeat expired, never by a live one or the caller', async () => {
        await registerOther('b#1', T0 + 1_000);
        await registerOther('c#1', T0 + 60_000);
        await commit({ inserts: [held('of-b', 'b#1', { leaseExpiresMs: T0 + 1_000 }), held('of-c', 'c#1', { leaseExpiresMs: T0 }), held('mine', ME, { leaseExpiresMs: T0 }), held('of-nobody', 'gone#1', { leaseExpiresMs: T0 })] });
        await store.heartbeat(ME, T0 + 5_000, T0 + 60_000);
        const sweep = await store.sweep(ME, T0 + 5_000, 100);
        const expected = store.exclusive ? ['of-b', 'of-c', 'of-nobody'] : ['of-b', 'of-nobody'];
        expect(sweep.leaseExpired.map((t) => t.id).sort()).toEqual(expected);
        expect(sweep.startExpired).toEqual([]);
      });

      it('waits for the task\'s own lease too', async () => {
        await registerOther('b#1', T0 + 1_000);
        await commit({ inserts: [held('long-lease', 'b#1', { leaseExpiresMs: T0 + 10_000 })] });
        expect((await store.sweep(ME, T0 + 5_000, 100)).leaseExpired).toEqual([]);
        expect((await store.sweep(ME, T0 + 10_001, 100)).leaseExpired.map((t) => t.id)).toEqual(['long-lease']);
      });

      it('expires earlier incarnations of the same dispatcher id when one registers', async () => {
        await registerOther('b#1', T0 + 60_000);
        await commit({ inserts: [held('of-b1', 'b#1', { leaseExpiresMs: T0 })] });
        expect((await store.sweep(ME, T0 + 1, 100)).leaseExpired).toEqual(store.exclusive ? [expect.objectContaining({ id: 'of-b1' })] : []);
        await store.register({ owner: 'b#2', dispatcherId: 'b', zone: 'b', address: '' }, T0 + 1, T0 + 60_000);
        expect((await store.sweep('b#2', T0 + 2, 100)).leaseExpired.map((t) => t.id)).toEqual(['of-b1']);
      });

      it('heartbeats keep an entry live and count live peers; an expired one says so', async () => {
        await registerOther('b#1', T0 + 1_000);
        const live = await store.heartbeat(ME, T0 + 500, T0 + 10_000);
        expect(live.wasLive).toBe(true);
        expect(live.peers).toBe(store.exclusive ? 0 : 1);
        const late = await store.heartbeat(ME, T0 + 20_000, T0 + 30_000);
        expect(late).toEqual({ wasLive: false, peers: 0 });
        expect((await store.heartbeat(ME, T0 + 20_001, T0 + 30_000)).wasLive).toBe(true);
      });

      it('an unregistered dispatcher\'s tasks are swept', async () => {
        await registerOther('b#1', T0 + 60_000);
        await commit({ inserts: [held('of-b', 'b#1', { leaseExpiresMs: T0 })] });
        await store.unregister('b#1');
        expect((await store.sweep(ME, T0 + 1, 100)).leaseExpired.map((t) => t.id)).toEqual(['of-b']);
      });

      it('returns PENDING tasks past their schedule-to-start deadline, at most `limit` of each kind', async () => {
        await commit({
          inserts: [
            taskRecord('due', { startDeadlineMs: T0 + 100 }),
            taskRecord('due-2', { startDeadlineMs: T0 + 50 }),
            taskRecord('not-yet', { startDeadlineMs: T0 + 101 }),
            taskRecord('no-limit', { startDeadlineMs: 0 }),
            held('assigned', ME, { startDeadlineMs: T0 }),
          ],
        });
        expect((await store.sweep(ME, T0 + 100, 100)).startExpired.map((t) => t.id).sort()).toEqual(['due', 'due-2']);
        expect((await store.sweep(ME, T0 + 100, 1)).startExpired.length).toBe(1);
      });
    });

    describe('owned', () => {
      it('returns the unfinished tasks one dispatcher holds', async () => {
        await commit({ inserts: [held('a'), held('b', ME, { state: 'RUNNING' }), held('c', 'other#1'), taskRecord('d'), held('e', ME, { state: 'COMPLETED' })] });
        expect((await store.owned(ME)).map((t) => t.id).sort()).toEqual(['a', 'b']);
      });
    });

    describe('cancel', () => {
      const error = errorInfo('CANCELLED', 'cancelled by request');

      it('cancels a PENDING task', async () => {
        await commit({ inserts: [taskRecord('t')] });
        const outcome = await store.cancel('t', T0 + 5, error);
        expect(outcome).toMatchObject({ cancelled: true, previousOwner: '', task: { state: 'CANCELLED', version: 2, error, updatedMs: T0 + 5 } });
        expect((await store.get('t'))?.state).toBe('CANCELLED');
      });

      it('cancels a running task whoever holds it, and names the holder', async () => {
        await commit({ inserts: [held('t', 'b#1', { state: 'RUNNING', attempt: 2, version: 7 })] });
        const outcome = await store.cancel('t', T0 + 5, error);
        expect(outcome).toMatchObject({ cancelled: true, previousOwner: 'b#1', previousAttempt: 2, task: { state: 'CANCELLED', owner: '', version: 8 } });
        // The holder's next write conflicts.
        const conflict = await commit({ writes: [write(held('t', 'b#1', { state: 'COMPLETED', version: 9 }), 7)] });
        expect(conflict.conflicts.get('t')?.state).toBe('CANCELLED');
      });

      it('leaves a terminal task alone, and answers undefined for an unknown one', async () => {
        await commit({ inserts: [taskRecord('t', { state: 'COMPLETED', version: 4 })] });
        expect(await store.cancel('t', T0, error)).toMatchObject({ cancelled: false, task: { state: 'COMPLETED', version: 4 } });
        expect(await store.cancel('nope', T0, error)).toBeUndefined();
      });
    });

    describe('purge', () => {
      it('deletes only terminal tasks last updated before the cutoff', async () => {
        const cutoff = T0 + 200;
        const tasks: [string, TaskState, number][] = [
          ['completed-old', 'COMPLETED', T0 + 100],
          ['failed-old', 'FAILED', T0 + 150],
          ['cancelled-old', 'CANCELLED', cutoff - 1],
          ['completed-at-cutoff', 'COMPLETED', cutoff],
          ['failed-new', 'FAILED', cutoff + 1],
          ['pending-old', 'PENDING', T0],
          ['assigned-old', 'ASSIGNED', T0],
          ['running-old', 'RUNNING', T0],
        ];
        await commit({ inserts: tasks.map(([id, state, updatedMs]) => taskRecord(id, { state, updatedMs })) });
        expect(await store.purge(T0, cutoff, 100)).toBe(3);
        for (const [id] of tasks) {
          const kept = !['completed-old', 'failed-old', 'cancelled-old'].includes(id);
          expect([id, (await store.get(id)) !== undefined]).toEqual([id, kept]);
        }
      });

      it('deletes expired keys of live tasks, and at most `limit` tasks and `limit` keys per call', async () => {
        await commit({ inserts: [1, 2, 3].map((i) => taskRecord(`live-${i}`, { idempotencyKey: `k-${i}`, createdMs: T0 + i * 100 })) });
        expect(await store.purge(T0 + RETENTION_MS + 200, 0, 100)).toBe(2);
        const outcome = await commit({ nowMs: T0 + RETENTION_MS + 200, inserts: [taskRecord('n-1', { idempotencyKey: 'k-1' }), taskRecord('n-3', { idempotencyKey: 'k-3' })] });
        expect([...outcome.duplicates]).toEqual([['n-3', 'live-3']]);
        await commit({ inserts: [1, 2, 3, 4, 5].map((i) => taskRecord(`done-${i}`, { state: 'COMPLETED', updatedMs: T0 + i })) });
        const nowMs = T0 + 10 * RETENTION_MS;
        const left = async (): Promise<number> => (await store.getMany([1, 2, 3, 4, 5].map((n) => `done-${n}`))).length;
        await store.purge(nowMs, T0 + 100, 2);
        expect(await left()).toBe(3);
        await store.purge(nowMs, T0 + 100, 2);
        expect(await left()).toBe(1);
        await store.purge(nowMs, T0 + 100, 2);
        expect(await left()).toBe(0);
      });
    });

    describe('lifecycle', () => {
      it('open is idempotent', async () => {
        await commit({ inserts: [taskRecord('t-1')] });
        await store.open();
        expect((await store.get('t-1'))?.id).toBe('t-1');
      });

      it('close is idempotent, and every operation rejects after it', async () => {
        await store.close();
        await store.close();
        await expect(store.get('t-1')).rejects.toThrow(/closed/);
        await expect(store.commit(batch())).rejects.toThrow(/closed/);
        await expect(store.getMany(['t'])).rejects.toThrow(/closed/);
        await expect(store.sweep(ME, T0, 1)).rejects.toThrow(/closed/);
        await expect(store.purge(T0, T0, 1)).rejects.toThrow(/closed/);
        expect(store.health().ok).toBe(false);
      });
    });
  });
}
