import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { CommitBatch } from '../../src/core/commit-batch';
import { SqliteTaskStore } from '../../src/store/sqlite/sqlite-task-store';
import { WalCheckpointer } from '../../src/store/sqlite/wal-checkpointer';
import { taskRecord } from './task-store.contract';

const T0 = 1_700_000_000_000;
const dir = mkdtempSync(join(tmpdir(), 'zonal-checkpointer-'));
let files = 0;
const nextPath = (): string => join(dir, `store-${++files}`, 'tasks.db');
const stores: SqliteTaskStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function open(path: string): Promise<SqliteTaskStore> {
  const store = new SqliteTaskStore({ path, synchronous: 'NORMAL' });
  stores.push(store);
  await store.open();
  return store;
}

function batch(from: number, count: number): CommitBatch {
  const inserts = Array.from({ length: count }, (_, i) => taskRecord(`t-${from + i}`, { payload: Buffer.alloc(2_000, 1) }));
  return { nowMs: T0, owner: 'me#1', dispatcherZone: '', leaseExpiresMs: T0 + 10_000, spilloverDelayMs: 0, idempotencyRetentionMs: 60_000, inserts, writes: [], claims: [] };
}

/** Polls a condition the checkpoint thread makes true; fails after `timeoutMs`. */
async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('SQLite WAL checkpoints on a thread of their own', () => {
  it('copies committed pages back into the database file while the main connection checkpoints nothing itself', async () => {
    const path = nextPath();
    const store = await open(path);
    const emptyBytes = statSync(path).size;
    // 4,000 tasks of 2 KB: far past the 1,000 pages at which a commit would checkpoint by itself.
    for (let i = 0; i < 40; i++) await store.commit(batch(i * 100, 100));
    await until('the database file holds the tasks', () => statSync(path).size > emptyBytes + 4_000 * 2_000);
    // A reader on its own connection sees every task in the file (through the WAL or not).
    const raw = new Database(path, { readonly: true });
    try {
      expect((raw.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n).toBe(4_000);
    } finally {
      raw.close();
    }
    const main = (store as unknown as { connection: { db: Database.Database } }).connection.db;
    expect(main.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
  });

  it('keeps every task across close and reopen', async () => {
    const path = nextPath();
    const store = await open(path);
    for (let i = 0; i < 10; i++) await store.commit(batch(i * 100, 100));
    await store.close();
    const again = await open(path);
    expect((await again.getMany(['t-0', 't-500', 't-999'])).map((t) => t.id).sort()).toEqual(['t-0', 't-500', 't-999']);
  });

  it('gives the automatic checkpoint back to the main connection when its thread dies', async () => {
    const path = nextPath();
    const store = await open(path);
    await store.commit(batch(0, 10));
    const checkpointer = (store as unknown as { checkpointer: WalCheckpointer }).checkpointer;
    const main = (store as unknown as { connection: { db: Database.Database } }).connection.db;
    expect(main.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    const worker = (checkpointer as unknown as { worker: { terminate(): Promise<number> } }).worker;
    await worker.terminate();
    await until('the main connection checkpoints again', () => main.pragma('wal_autocheckpoint', { simple: true }) === 1000);
    // And the store still commits.
    await store.commit(batch(10, 10));
    expect(await store.get('t-15')).toBeDefined();
  });
});
