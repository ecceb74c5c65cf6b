import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SqliteTaskStore } from '../../src/store/sqlite/sqlite-task-store';
import { StoreDamagedError } from '../../src/store/store-errors';
import { taskRecord } from '../support/task-record';

const root = mkdtempSync(join(tmpdir(), 'zonal-integrity-'));
let dirs = 0;
/** A fresh directory; the store file inside it is `zonal.db`. */
const nextPath = (): string => {
  const dir = join(root, `data-${++dirs}`);
  mkdirSync(dir);
  return join(dir, 'zonal.db');
};
const NOW_MS = Date.UTC(2026, 11, 1, 8, 0, 0);
const opened: SqliteTaskStore[] = [];
function store(path: string, allowDamaged = false): SqliteTaskStore {
  const s = new SqliteTaskStore({ path, allowDamaged, nowMs: () => NOW_MS });
  opened.push(s);
  return s;
}

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ALL_IDS = Array.from({ length: 200 }, (_, i) => `t-${i}`);

/** A store with 200 unfinished tasks, stopped cleanly (its WAL checkpointed into the file). */
async function cleanlyStopped(path: string): Promise<void> {
  const s = store(path);
  await s.open();
  await s.commit({
    nowMs: NOW_MS,
    owner: 'o#1',
    dispatcherZone: '',
    leaseExpiresMs: 0,
    spilloverDelayMs: 0,
    idempotencyRetentionMs: 60_000,
    inserts: Array.from({ length: 200 }, (_, i) => taskRecord(`t-${i}`, { payload: new Uint8Array(500).fill(7) })),
    writes: [],
    claims: [],
  });
  await s.close();
  expect(existsSync(`${path}-wal`)).toBe(false);
}

async function openError(s: SqliteTaskStore): Promise<StoreDamagedError> {
  const err: unknown = await s.open().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreDamagedError);
  return err as StoreDamagedError;
}

/** The root page of a table or index, from the schema. */
function rootPage(path: string, name: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT rootpage FROM sqlite_schema WHERE name = ?').get(name) as { rootpage: number }).rootpage;
  } finally {
    db.close();
  }
}

/** Overwrites the root page of `name` (4 KiB pages) with garbage. */
function smashRoot(path: string, name: string): void {
  const page = rootPage(path, name);
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, (page - 1) * 4096);
  } finally {
    closeSync(fd);
  }
}

describe('SqliteTaskStore integrity at open', () => {
  it('refuses a file cut to half after a clean stop, naming the file and the flag', async () => {
    const path = nextPath();
    await cleanlyStopped(path);
    truncateSync(path, Math.floor(statSync(path).size / 2));
    const err = await openError(store(path));
    expect(err.reason).toBe('STORE_DAMAGED');
    expect(err.path).toBe(path);
    expect(err.message).toContain(`the store ${path} is damaged`);
    expect(err.message).toContain('--allow-damaged-store');
    // Refusing changes nothing on disk.
    expect(readdirSync(join(path, '..'))).toEqual(['zonal.db']);
  });

  it('with allowDamaged, moves a file SQLite cannot read aside and starts empty', async () => {
    const path = nextPath();
    await cleanlyStopped(path);
    const size = Math.floor(statSync(path).size / 2);
    truncateSync(path, size);
    const s = store(path, true);
    await s.open();
    expect(await s.getMany(ALL_IDS)).toEqual([]);
    const aside = `${path}.damaged-2026-12-01T08-00-00-000Z`;
    expect(statSync(aside).size).toBe(size);
  });

  it('refuses a file with a damaged page, listing what quick_check found', async () => {
    const path = nextPath();
    await cleanlyStopped(path);
    smashRoot(path, 'tasks');
    const err = await openError(store(path));
    expect(err.unreadable).toBe(false);
    expect(err.problems.join('\n')).toContain(`page ${rootPage(path, 'tasks')}`);
    expect(err.message).toContain('--allow-damaged-store');
  });

  it('with allowDamaged, serves a damaged file in place when its unfinished tasks still load', async () => {
    const path = nextPath();
    await cleanlyStopped(path);
    // The index of finished tasks: recovery does not need it.
    smashRoot(path, 'tasks_finished_by_updated_ms');
    await openError(store(path));
    const s = store(path, true);
    await s.open();
    expect((await s.getMany(ALL_IDS)).length).toBe(200);
    expect(readdirSync(join(path, '..')).filter((f) => f.includes('damaged'))).toEqual([]);
  });

  it('refuses a store file cut to zero bytes (an empty database is not a fresh store)', async () => {
    const path = nextPath();
    await cleanlyStopped(path);
    truncateSync(path, 0);
    const err = await openError(store(path));
    expect(err.problems).toEqual([expect.stringContaining('holds no Zonal schema')]);
  });

  it('refuses a WAL whose database file is missing', async () => {
    const path = nextPath();
    writeFileSync(`${path}-wal`, 'left behind');
    const err = await openError(store(path));
    expect(err.unreadable).toBe(true);
    expect(err.message).toContain('its write-ahead log');
  });

  it('creates a new store whole: no half-made file is left under the real name', async () => {
    const path = nextPath();
    const s = store(path);
    await s.open();
    await s.close();
    expect(readdirSync(join(path, '..'))).toEqual(['zonal.db']);
    // Reopening an intact store passes the check.
    await store(path).open();
  });
});
