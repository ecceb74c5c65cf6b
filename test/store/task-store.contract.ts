import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TaskRecord } from '../../src/core/task';
import type { TaskState } from '../../src/core/task-state';
import { errorInfo } from '../../src/errors';
import type { TaskStore } from '../../src/store/task-store';
import { taskRecord } from '../support/task-record';

/** A fixed instant; every time in the suite is relative to it. Nothing sleeps. */
const T0 = 1_700_000_000_000;
const RETENTION_MS = 60_000;

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

/**
 * The behaviour every TaskStore adapter must have. `make` returns a new,
 * empty, not yet opened store; the suite opens it before and closes it after
 * each test.
 */
export function describeTaskStoreContract(name: string, make: () => Promise<TaskStore>): void {
  describe(`TaskStore contract: ${name}`, () => {
    let store: TaskStore;

    beforeEach(async () => {
      store = await make();
      await store.open();
    });

    afterEach(async () => {
      await store.close();
    });

    const ids = async (records: Promise<TaskRecord[]>): Promise<string[]> => (await records).map((r) => r.id);

    describe('commit and get', () => {
      it('round-trips every field', async () => {
        const record = taskRecord('t-1', {
          queue: 'images',
          priority: -7,
          payload: new Uint8Array([0, 255, 0, 0, 128, 0]),
          contentType: 'application/x-protobuf',
          labels: { zone: 'eu-1a', 'ключ': 'значение', empty: '' },
          preferredZone: 'eu-1a',
          idempotencyKey: 'key-1',
          state: 'FAILED',
          attempt: 3,
          maxAttempts: 3,
          version: 41,
          attemptTimeoutMs: 12_345,
          scheduleToStartTimeoutMs: 600_000,
          notBeforeMs: T0 + 5,
          createdMs: T0,
          updatedMs: T0 + 99,
          sessionId: 's-1',
          workerId: 'w-1',
          attemptDeadlineMs: T0 + 12_345,
          progressPermille: 999,
          result: new Uint8Array([0, 0, 7, 0]),
          error: errorInfo('HANDLER_FAILED', 'boom: "quoted" \n newline'),
          seq: 2 ** 40,
        });
        await store.commit([record], RETENTION_MS);
        expect(plain(await store.get('t-1'))).toEqual(plain(record));
      });

      it('round-trips an empty payload, empty labels, a null result and a null error', async () => {
        const record = taskRecord('t-1', { payload: new Uint8Array(0), labels: {}, result: null, error: null });
        await store.commit([record], RETENTION_MS);
        const got = await store.get('t-1');
        expect(plain(got)).toEqual(plain(record));
        expect(got?.result).toBeNull();
        expect(got?.error).toBeNull();
      });

      it('returns undefined for an unknown id', async () => {
        expect(await store.get('nope')).toBeUndefined();
      });

      it('fully replaces a record committed again with the same id', async () => {
        await store.commit([taskRecord('t-1', { labels: { a: '1' }, version: 1 })], RETENTION_MS);
        const replacement = taskRecord('t-1', {
          labels: { b: '2' },
          version: 2,
          state: 'COMPLETED',
          payload: new Uint8Array(0),
          result: new Uint8Array([9]),
          error: errorInfo('CANCELLED', 'x'),
        });
        await store.commit([replacement], RETENTION_MS);
        expect(plain(await store.get('t-1'))).toEqual(plain(replacement));
      });

      it('writes every record of a batch, and accepts an empty batch', async () => {
        await store.commit([], RETENTION_MS);
        await store.commit([taskRecord('a'), taskRecord('b'), taskRecord('c')], RETENTION_MS);
        for (const id of ['a', 'b', 'c']) expect((await store.get(id))?.id).toBe(id);
      });

      it('copies records in and out: later mutation of either side changes nothing stored', async () => {
        const record = taskRecord('t-1', { labels: { a: '1' }, result: new Uint8Array([5]) });
        await store.commit([record], RETENTION_MS);
        record.payload[0] = 42;
        record.labels['a'] = 'changed';
        const got = await store.get('t-1');
        if (!got) throw new Error('missing');
        got.payload[1] = 42;
        got.labels['b'] = 'added';
        got.state = 'RUNNING';
        expect(plain(await store.get('t-1'))).toEqual(plain(taskRecord('t-1', { labels: { a: '1' }, result: new Uint8Array([5]) })));
      });

      it('writes nothing of a commit that rejects: no record, no replacement, no key', async () => {
        const before = taskRecord('a', { version: 1 });
        await store.commit([before], RETENTION_MS);
        const batch = [
          taskRecord('a', { version: 2, idempotencyKey: 'key-a' }),
          taskRecord('b', { idempotencyKey: 'key-b' }),
          unreadable(taskRecord('c')),
        ];
        await expect(store.commit(batch, RETENTION_MS)).rejects.toThrow();
        expect(plain(await store.get('a'))).toEqual(plain(before));
        expect(await store.get('b')).toBeUndefined();
        expect(await store.get('c')).toBeUndefined();
        expect(await store.findByIdempotencyKey('key-a', T0)).toBeUndefined();
        expect(await store.findByIdempotencyKey('key-b', T0)).toBeUndefined();
        // The store is still usable.
        await store.commit([taskRecord('b')], RETENTION_MS);
        expect((await store.get('b'))?.id).toBe('b');
      });
    });

    describe('idempotency keys', () => {
      it('finds the task until createdMs + retention, and not from then on', async () => {
        await store.commit([taskRecord('t-1', { idempotencyKey: 'k', createdMs: T0 })], RETENTION_MS);
        expect((await store.findByIdempotencyKey('k', T0))?.id).toBe('t-1');
        expect((await store.findByIdempotencyKey('k', T0 + RETENTION_MS - 1))?.id).toBe('t-1');
        expect(await store.findByIdempotencyKey('k', T0 + RETENTION_MS)).toBeUndefined();
        expect(await store.findByIdempotencyKey('k', T0 + 10 * RETENTION_MS)).toBeUndefined();
        expect(await store.findByIdempotencyKey('other', T0)).toBeUndefined();
      });

      it('never maps the empty key', async () => {
        await store.commit([taskRecord('t-1', { idempotencyKey: '' })], RETENTION_MS);
        expect(await store.findByIdempotencyKey('', T0)).toBeUndefined();
      });

      it('returns the latest version of the task the key points to', async () => {
        await store.commit([taskRecord('t-1', { idempotencyKey: 'k' })], RETENTION_MS);
        await store.commit([taskRecord('t-1', { idempotencyKey: 'k', state: 'RUNNING', version: 5 })], RETENTION_MS);
        const got = await store.findByIdempotencyKey('k', T0 + 1);
        expect(got?.state).toBe('RUNNING');
        expect(got?.version).toBe(5);
      });

      it('re-points an expired key to a new task', async () => {
        await store.commit([taskRecord('old', { idempotencyKey: 'k', createdMs: T0 })], RETENTION_MS);
        const later = T0 + RETENTION_MS + 1_000;
        expect(await store.findByIdempotencyKey('k', later)).toBeUndefined();
        await store.commit([taskRecord('new', { idempotencyKey: 'k', createdMs: later })], RETENTION_MS);
        expect((await store.findByIdempotencyKey('k', later))?.id).toBe('new');
        expect((await store.findByIdempotencyKey('k', later + RETENTION_MS - 1))?.id).toBe('new');
        expect(await store.findByIdempotencyKey('k', later + RETENTION_MS)).toBeUndefined();
        expect((await store.get('old'))?.id).toBe('old');
      });

      it('keeps a re-pointed key on the new task when the old task is committed again', async () => {
        await store.commit([taskRecord('old', { idempotencyKey: 'k', createdMs: T0 })], RETENTION_MS);
        const later = T0 + RETENTION_MS + 1_000;
        await store.commit([taskRecord('new', { idempotencyKey: 'k', createdMs: later })], RETENTION_MS);
        await store.commit([taskRecord('old', { idempotencyKey: 'k', createdMs: T0, state: 'RUNNING', version: 2 })], RETENTION_MS);
        expect((await store.findByIdempotencyKey('k', later))?.id).toBe('new');
      });
    });

    describe('loadUnfinished', () => {
      it('returns only non-terminal tasks, ordered by seq', async () => {
        const states: [string, TaskState, number][] = [
          ['running', 'RUNNING', 30],
          ['done', 'COMPLETED', 5],
          ['pending', 'PENDING', 20],
          ['failed', 'FAILED', 1],
          ['assigned', 'ASSIGNED', 10],
          ['cancelled', 'CANCELLED', 15],
          ['pending-2', 'PENDING', 40],
        ];
        await store.commit(states.map(([id, state, seq]) => taskRecord(id, { state, seq })), RETENTION_MS);
        expect(await ids(store.loadUnfinished())).toEqual(['assigned', 'pending', 'running', 'pending-2']);
      });

      it('follows replacements: a task that finishes drops out, a re-queued one moves to its new seq', async () => {
        await store.commit([taskRecord('a', { seq: 1 }), taskRecord('b', { seq: 2 }), taskRecord('c', { seq: 3 })], RETENTION_MS);
        await store.commit([taskRecord('a', { seq: 4, version: 2 }), taskRecord('b', { state: 'COMPLETED', version: 2 })], RETENTION_MS);
        expect(await ids(store.loadUnfinished())).toEqual(['c', 'a']);
      });

      it('returns an empty list from an empty store', async () => {
        expect(await store.loadUnfinished()).toEqual([]);
      });
    });

    describe('purge', () => {
      it('deletes only idempotency keys at or past their expiry', async () => {
        await store.commit(
          [1, 2, 3].map((i) => taskRecord(`t-${i}`, { idempotencyKey: `k-${i}`, createdMs: T0 + i * 100 })),
          RETENTION_MS,
        );
        expect(await store.purge(T0 + RETENTION_MS + 200, 0, 100)).toBe(2);
        // Asked about an earlier instant, a purged key is gone; the kept one is still there.
        expect(await store.findByIdempotencyKey('k-1', T0)).toBeUndefined();
        expect(await store.findByIdempotencyKey('k-2', T0)).toBeUndefined();
        expect((await store.findByIdempotencyKey('k-3', T0))?.id).toBe('t-3');
        // Keys go, their (unfinished) tasks stay.
        expect(await ids(store.loadUnfinished())).toEqual(['t-1', 't-2', 't-3']);
      });

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
        await store.commit(tasks.map(([id, state, updatedMs], i) => taskRecord(id, { state, updatedMs, seq: i })), RETENTION_MS);
        expect(await store.purge(T0, cutoff, 100)).toBe(3);
        for (const [id] of tasks) {
          const kept = !['completed-old', 'failed-old', 'cancelled-old'].includes(id);
          expect([id, (await store.get(id)) !== undefined]).toEqual([id, kept]);
        }
      });

      it('deletes at most `limit` keys and `limit` tasks per call', async () => {
        await store.commit(
          [1, 2, 3, 4, 5].map((i) =>
            taskRecord(`t-${i}`, { state: 'COMPLETED', updatedMs: T0 + i, idempotencyKey: `k-${i}`, seq: i }),
          ),
          RETENTION_MS,
        );
        const nowMs = T0 + 10 * RETENTION_MS;
        expect(await store.purge(nowMs, nowMs, 2)).toBe(4);
        expect(await store.purge(nowMs, nowMs, 2)).toBe(4);
        expect(await store.purge(nowMs, nowMs, 2)).toBe(2);
        expect(await store.purge(nowMs, nowMs, 2)).toBe(0);
        for (const i of [1, 2, 3, 4, 5]) expect(await store.get(`t-${i}`)).toBeUndefined();
      });

      it('never returns a purged task through a still-retained key', async () => {
        await store.commit([taskRecord('t-1', { state: 'COMPLETED', idempotencyKey: 'k', updatedMs: T0 })], RETENTION_MS);
        expect(await store.purge(T0, T0 + 1, 100)).toBe(1);
        expect(await store.findByIdempotencyKey('k', T0)).toBeUndefined();
      });
    });

    describe('lifecycle', () => {
      it('open is idempotent', async () => {
        await store.commit([taskRecord('t-1')], RETENTION_MS);
        await store.open();
        expect((await store.get('t-1'))?.id).toBe('t-1');
      });

      it('close is idempotent, and every operation rejects after it', async () => {
        await store.close();
        await store.close();
        await expect(store.get('t-1')).rejects.toThrow(/closed/);
        await expect(store.commit([taskRecord('t-1')], RETENTION_MS)).rejects.toThrow(/closed/);
        await expect(store.findByIdempotencyKey('k', T0)).rejects.toThrow(/closed/);
        await expect(store.loadUnfinished()).rejects.toThrow(/closed/);
        await expect(store.purge(T0, T0, 1)).rejects.toThrow(/closed/);
      });
    });
  });
}
