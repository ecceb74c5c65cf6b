import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/sqlite/migrate';
import { SqliteTaskStore } from '../../src/store/sqlite/sqlite-task-store';
import { LOAD_UNFINISHED } from '../../src/store/sqlite/sql/load-unfinished';
import { PURGE_FINISHED } from '../../src/store/sqlite/sql/purge-finished';
import { describeTaskStoreContract, taskRecord } from './task-store.contract';

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
    await first.commit([record], 1_000);
    await first.close();
    const second = await openStore(path);
    expect((await second.get('t-1'))?.payload).toEqual(Buffer.from([0, 1, 0]));
    expect((await second.findByIdempotencyKey('k', record.createdMs))?.id).toBe('t-1');
    expect((await second.loadUnfinished()).map((r) => r.id)).toEqual(['t-1']);
  });

  it('lets a second store on the same file read what the first committed', async () => {
    const path = nextPath();
    const writer = await openStore(path);
    const reader = await openStore(path);
    await writer.commit([taskRecord('t-1')], 1_000);
    expect((await reader.get('t-1'))?.id).toBe('t-1');
    await reader.commit([taskRecord('t-2')], 1_000);
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
    await store.commit([taskRecord('a', { version: 1 })], 1_000);
    const bogus = taskRecord('c', { state: 'BOGUS' as never }); // violates the CHECK on state
    const batch = [taskRecord('a', { version: 2, idempotencyKey: 'k-a' }), taskRecord('b', { idempotencyKey: 'k-b' }), bogus];
    await expect(store.commit(batch, 1_000)).rejects.toThrow(/CHECK constraint/);
    expect((await store.get('a'))?.version).toBe(1);
    expect(await store.get('b')).toBeUndefined();
    expect(await store.findByIdempotencyKey('k-a', 0)).toBeUndefined();
    expect(await store.findByIdempotencyKey('k-b', 0)).toBeUndefined();
  });

  it('reads unfinished and purges finished tasks through their partial indexes', async () => {
    const path = nextPath();
    await openStore(path);
    const plan = (sql: string): string =>
      openRaw(path)
        .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...(sql.includes('?') ? [0, 1] : []))
        .map((row) => row.detail)
        .join('\n');
    expect(plan(LOAD_UNFINISHED)).toMatch(/USING INDEX tasks_unfinished_by_seq/);
    expect(plan(LOAD_UNFINISHED)).not.toMatch(/TEMP B-TREE/);
    expect(plan(PURGE_FINISHED)).toMatch(/USING INDEX tasks_finished_by_updated_ms/);
  });

  it('works in memory, with synchronous NORMAL', async () => {
    const store = await openStore(':memory:', 'NORMAL');
    await store.commit([taskRecord('t-1')], 1_000);
    expect((await store.get('t-1'))?.id).toBe('t-1');
  });

  it('rejects use before open()', async () => {
    const store = new SqliteTaskStore({ path: ':memory:' });
    await expect(store.get('t-1')).rejects.toThrow(/not open/);
  });
});
