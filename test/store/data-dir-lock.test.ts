import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DataDirLock, HOLDER_FILE, readHolder } from '../../src/store/sqlite/data-dir-lock';
import { DataDirInUseError } from '../../src/store/store-errors';

const root = mkdtempSync(join(tmpdir(), 'zonal-lock-'));
let dirs = 0;
const nextDir = (): string => join(root, `data-${++dirs}`);
const held: DataDirLock[] = [];
const acquire = (dataDir: string, startedAtMs?: number): DataDirLock => {
  const lock = DataDirLock.acquire(dataDir, startedAtMs);
  held.push(lock);
  return lock;
};

afterEach(() => {
  for (const lock of held.splice(0)) lock.release();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function refusal(dataDir: string): DataDirInUseError {
  try {
    acquire(dataDir);
  } catch (err) {
    if (err instanceof DataDirInUseError) return err;
    throw err;
  }
  throw new Error('the second acquire was not refused');
}

describe('DataDirLock', () => {
  it('refuses a second holder at once, naming the first by pid, host and start time', () => {
    const dataDir = nextDir();
    acquire(dataDir, Date.UTC(2026, 11, 1, 8, 0, 0));
    const err = refusal(dataDir);
    expect(err.reason).toBe('DATA_DIR_IN_USE');
    expect(err.holder).toEqual({ pid: process.pid, host: hostname(), startedAt: '2026-12-01T08:00:00.000Z' });
    expect(err.message).toContain(`data dir ${dataDir} is in use by pid ${process.pid} on host ${hostname()}`);
    expect(err.message).toContain('--data-dir');
  });

  it('still holds after a refused attempt closed its own handle on the lock file', () => {
    const dataDir = nextDir();
    acquire(dataDir);
    refusal(dataDir);
    // Closing a second fd of the same file must not drop the first one's POSIX lock.
    expect(refusal(dataDir).holder?.pid).toBe(process.pid);
  });

  it('lets the next holder in once released, and removes its name', () => {
    const dataDir = nextDir();
    const first = acquire(dataDir);
    expect(existsSync(join(dataDir, HOLDER_FILE))).toBe(true);
    first.release();
    expect(first.held).toBe(false);
    expect(existsSync(join(dataDir, HOLDER_FILE))).toBe(false);
    const second = acquire(dataDir, Date.UTC(2026, 0, 1));
    expect(second.held).toBe(true);
    expect(JSON.parse(readFileSync(join(dataDir, HOLDER_FILE), 'utf8'))).toMatchObject({ startedAt: '2026-01-01T00:00:00.000Z' });
    first.release(); // idempotent: does not touch the new holder
    expect(readHolder(dataDir)?.startedAt).toBe('2026-01-01T00:00:00.000Z');
    expect(refusal(dataDir).holder?.startedAt).toBe('2026-01-01T00:00:00.000Z');
  });

  it('decides by the lock, not by a stale name left by a holder that died', () => {
    const dataDir = nextDir();
    const first = acquire(dataDir);
    // What a kill -9 leaves behind: the name stays, the kernel drops the lock.
    const name = readFileSync(join(dataDir, HOLDER_FILE), 'utf8');
    first.release();
    writeFileSync(join(dataDir, HOLDER_FILE), name);
    expect(acquire(dataDir).held).toBe(true);
  });

  it('names no holder when its name is missing', () => {
    const dataDir = nextDir();
    acquire(dataDir);
    rmSync(join(dataDir, HOLDER_FILE));
    const err = refusal(dataDir);
    expect(err.holder).toBeUndefined();
    expect(err.message).toContain('it has not written its name yet');
  });
});
