import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/sqlite/migrate';
import { SqliteTaskStore } from '../../src/store/sqlite/sqlite-task-store';
import { MIGRATION_001_INIT } from '../../src/store/sqlite/migrations/001-init';
import { CLAIM_AT_ONCE, CLAIM_SPILLED } from '../../src/store/sqlite/sql/claim-ready';
import { NEXT_READY_AT, NEXT_SPILL_READY_AT } from '../../src/store/sqlite/sql/next-claimable';
import { OWNED_TASKS } from '../../src/store/sqlite/sql/owned-tasks';
import { FINISHED_TO_PURGE } from '../../src/store/sqlite/sql/purge';
import { LEASE_EXPIRED, START_EXPIRED } from '../../src/store/sqlite/sql/sweep';
import type { CommitBatch } from '../../src/core/commit-batch';
import type { TaskRecord } from '../../src/core/task-fields';
import { describeTaskStoreContract, taskRecord } from './task-store.contract';

const T0 = 1_700_000_000_000;
function batch(inserts: TaskRecord[], overrides: Partial<CommitBatch> = {}): CommitBatch {
  return { nowMs: T0, owner: 'me#1', dispatcherZone: '', leaseExpiresMs: T0 + 10_000, spilloverDelayMs: 0, idempotencyRetentionMs: 60_000, inserts, writes: [], claims: [], ...overrides };
}

const dir = mkdtempSync(join(tmpdir(), 'zonal-sqlite-store-'));
let files = 0;
const nextPath = (): string => join(dir, `store-${++files}`, 'tasks.db');

/** Stores and raw connections a test opened; closed after it. */
const opened: { close(): unknown }[] = [];
async function openStore(path: string, synchronous?: 'FULL' | 'NORMAL'): Promise<SqliteTaskStore> {
  const store = new SqliteTaskStore(synchronous ? { path, synchronous } : { path });
  opened.push(store);
  await store.open();
  return store;
}
function openRaw(path: string): Database.Database {
  const db = new Database(path);
  opened.push(db);
  return db;
}

afterEach(async () => {
  for (const handle of opened.splice(0).reverse()) await handle.close();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describeTaskStoreContract('SqliteTaskStore (file)', async () => new SqliteTaskStore({ path: nextPath() }));

describe('SqliteTaskStore', () => {
  it('creates the parent directory and puts the file in WAL mode', async () => {
    const path = nextPath();
    expect(existsSync(path)).toBe(false);
    await openStore(path);
    expect(existsSync(path)).toBe(true);
    expect(openRaw(path).pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('sees committed data after close and reopen', async () => {
    const path = nextPath();
    const first = await openStore(path);
    const record = taskRecord('t-1', { idempotencyKey: 'k', payload: new Uint8Array([0, 1, 0]) });
    await first.commit(batch([record]));
    await first.close();
    const second = await openStore(path);
    expect((await second.get('t-1'))?.payload).toEqual(Buffer.from([0, 1, 0]));
    // The key is still held, and FIFO places go on after the ones in the file.
    expect((await second.commit(batch([taskRecord('t-2', { idempotencyKey: 'k' }), taskRecord('t-3')]))).duplicates.get('t-2')).toBe('t-1');
    const claimed = await second.commit(batch([], { claims: [{ queue: 'q', zone: '', slots: [{ sessionId: 's', workerId: 'w' }, { sessionId: 's', workerId: 'w' }] }] }));
    expect(claimed.claimed[0]!.map((c) => c.task.id)).toEqual(['t-1', 't-3']);
  });

  it('lets a second store on the same file read what the first committed', async () => {
    const path = nextPath();
    const writer = await openStore(path);
    const reader = await openStore(path);
    await writer.commit(batch([taskRecord('t-1')]));
    expect((await reader.get('t-1'))?.id).toBe('t-1');
    await reader.commit(batch([taskRecord('t-2')]));
    expect((await writer.get('t-2'))?.id).toBe('t-2');
  });

  it('applies migrations once: reopening leaves the schema at the newest version', async () => {
    const path = nextPath();
    await (await openStore(path)).close();
    await (await openStore(path)).close();
    expect(openRaw(path).pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
  });

  it('refuses a database migrated by a newer build', async () => {
    const path = nextPath();
    await (await openStore(path)).close();
    const raw = openRaw(path);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    await expect(openStore(path)).rejects.toThrow(/newer than this build supports/);
  });

  it('rolls back the whole commit when the database rejects one record', async () => {
    const store = await openStore(nextPath());
    await store.commit(batch([taskRecord('a', { state: 'ASSIGNED', owner: 'me#1', version: 1 })]));
    const bogus = taskRecord('c', { state: 'BOGUS' as never }); // violates the CHECK on state
    const failing = batch([taskRecord('b', { idempotencyKey: 'k-b' }), bogus], { writes: [{ record: taskRecord('a', { state: 'RUNNING', owner: 'me#1', version: 2 }), expectVersion: 1, requeue: 'none' }] });
    await expect(store.commit(failing)).rejects.toThrow(/CHECK constraint/);
    expect((await store.get('a'))?.version).toBe(1);
    expect(await store.get('b')).toBeUndefined();
    expect((await store.commit(batch([taskRecord('d', { idempotencyKey: 'k-b' })]))).duplicates.size).toBe(0);
  });

  it('claims, sweeps, lists and purges through their indexes, walking tasks_ready in claim order without a sort', async () => {
    const path = nextPath();
    await openStore(path);
    const plan = (sql: string): string =>
      openRaw(path)
        .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...(sql.includes('@') ? [{ queue: 'q', now: 0, spilled_by: 0, zone: '', dispatcher_zone: '', limit: 1, owner: 'o' }] : sql.includes('?') ? (sql.match(/\?/g)!.map(() => 0)) : []))
        .map((row) => row.detail)
        .join('\n');
    for (const claim of [CLAIM_AT_ONCE, CLAIM_SPILLED]) {
      expect(plan(claim)).toMatch(/USING INDEX tasks_ready/);
      expect(plan(claim)).not.toMatch(/TEMP B-TREE/);
    }
    expect(plan(NEXT_READY_AT)).toMatch(/USING (COVERING )?INDEX tasks_pending_by_ready_at/);
    expect(plan(NEXT_SPILL_READY_AT)).toMatch(/USING (COVERING )?INDEX tasks_pending_by_ready_at/);
    expect(plan(START_EXPIRED)).toMatch(/USING INDEX tasks_start_deadline/);
    expect(plan(LEASE_EXPIRED)).toMatch(/tasks_held_by_owner|SCAN t/);
    expect(plan(OWNED_TASKS)).toMatch(/USING INDEX tasks_held_by_owner/);
    expect(plan(FINISHED_TO_PURGE)).toMatch(/USING INDEX tasks_finished_by_updated_ms/);
  });

  it('migrates a store of schema 1: PENDING tasks keep their order, ASSIGNED ones are swept as held by nobody', async () => {
    const path = nextPath();
    const dirPath = join(path, '..');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dirPath, { recursive: true });
    const raw = new Database(path);
    raw.pragma('journal_mode = WAL');
    raw.exec(MIGRATION_001_INIT);
    raw.pragma('user_version = 1');
    const insert = raw.prepare(`INSERT INTO tasks (id, queue, priority, payload, content_type, labels, preferred_zone, idempotency_key, state, attempt, max_attempts, version,
      attempt_timeout_ms, schedule_to_start_timeout_ms, not_before_ms, created_ms, updated_ms, session_id, worker_id, attempt_deadline_ms, progress_permille, result, error, seq)
      VALUES (?, 'q', 0, x'00', '', '{}', '', '', ?, 1, 3, ?, 1000, ?, ?, ?, ?, ?, '', ?, 0, NULL, NULL, ?)`);
    insert.run('late', 'PENDING', 1, 0, 0, T0, T0 + 5, '', 0, 2);
    insert.run('early', 'PENDING', 1, 60_000, T0 + 100, T0, T0, '', 0, 1);
    insert.run('held', 'RUNNING', 3, 0, 0, T0, T0, 's-old', T0 + 1000, 3);
    raw.close();
    const store = await openStore(path);
    expect(openRaw(path).pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(await store.get('early')).toMatchObject({ readyAtMs: T0 + 100, startDeadlineMs: T0 + 60_100, owner: '' });
    expect(await store.get('late')).toMatchObject({ readyAtMs: T0 + 5, startDeadlineMs: 0 });
    await store.register({ owner: 'me#1', dispatcherId: 'me', zone: '', address: '' }, T0, T0 + 10_000);
    expect((await store.sweep('me#1', T0 + 200, 10)).leaseExpired.map((t) => t.id)).toEqual(['held']);
    const claimed = await store.commit(batch([], { nowMs: T0 + 200, claims: [{ queue: 'q', zone: '', slots: [{ sessionId: 's', workerId: 'w' }, { sessionId: 's', workerId: 'w' }] }] }));
    expect(claimed.claimed[0]!.map((c) => c.task.id)).toEqual(['early', 'late']);
  });

  it('works in memory, with synchronous NORMAL', async () => {
    const store = await openStore(':memory:', 'NORMAL');
    await store.commit(batch([taskRecord('t-1')]));
    expect((await store.get('t-1'))?.id).toBe('t-1');
  });

  it('rejects use before open()', async () => {
    const store = new SqliteTaskStore({ path: ':memory:' });
    await expect(store.get('t-1')).rejects.toThrow(/not open/);
  });
});
