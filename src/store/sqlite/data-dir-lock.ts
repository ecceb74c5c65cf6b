import Database from 'better-sqlite3';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataDirInUseError, type DataDirHolder } from '../store-errors';

/** The lock itself: an empty SQLite database held in an exclusive transaction. */
export const LOCK_FILE = 'zonal.lock';
/** Who holds the lock, JSON DataDirHolder; written by the holder, read by whoever is refused. */
export const HOLDER_FILE = 'zonal.lock.holder';

/**
 * One dispatcher per data dir. The lock is SQLite's own file lock (POSIX
 * fcntl) on `<dataDir>/zonal.lock`, taken with `locking_mode = EXCLUSIVE`
 * and an open `BEGIN EXCLUSIVE`: the kernel drops it when the process dies,
 * kill -9 included, so a restart after a crash is never blocked; and it is
 * seen by another host sharing the volume wherever the filesystem supports
 * POSIX locks (local disks, NFSv4, most CSI volumes). A pid check alone
 * would work on neither count.
 *
 * The holder writes its pid, host and start time to `zonal.lock.holder`
 * (temp + rename), so a refused process can name it. The name may be
 * missing in the instant between taking the lock and writing it; it is never
 * trusted for the decision, only for the message.
 *
 * Lifecycle: acquire() -> release(). Invariant: `db` is open iff this
 * object holds the lock.
 */
export class DataDirLock {
  private db: Database.Database | undefined;

  private constructor(
    readonly dataDir: string,
    readonly holder: DataDirHolder,
    db: Database.Database,
  ) {
    this.db = db;
  }

  /** Takes the lock at once, or throws DataDirInUseError naming the holder. Never waits. */
  static acquire(dataDir: string, startedAtMs: number = Date.now()): DataDirLock {
    mkdirSync(dataDir, { recursive: true });
    // timeout 0: a held lock refuses at once instead of waiting (better-sqlite3's default busy wait is 5 s).
    const db = new Database(path.join(dataDir, LOCK_FILE), { timeout: 0 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if (isBusy(err)) throw new DataDirInUseError(dataDir, readHolder(dataDir));
      throw err;
    }
    const holder: DataDirHolder = { pid: process.pid, host: os.hostname(), startedAt: new Date(startedAtMs).toISOString() };
    try {
      writeHolder(dataDir, holder);
    } catch (err) {
      db.close();
      throw err;
    }
    return new DataDirLock(dataDir, holder, db);
  }

  get held(): boolean {
    return this.db !== undefined;
  }

  /** Lets the next process in. Idempotent. */
  release(): void {
    const db = this.db;
    if (db === undefined) return;
    this.db = undefined;
    // The name goes first: once the lock is free, the file belongs to the next holder.
    rmSync(path.join(this.dataDir, HOLDER_FILE), { force: true });
    db.close();
  }
}

/** The holder's name, or undefined when it is missing or unreadable. */
export function readHolder(dataDir: string): DataDirHolder | undefined {
  try {
    const value = JSON.parse(readFileSync(path.join(dataDir, HOLDER_FILE), 'utf8')) as Partial<DataDirHolder>;
    if (typeof value.pid !== 'number' || typeof value.host !== 'string' || typeof value.startedAt !== 'string') return undefined;
    return { pid: value.pid, host: value.host, startedAt: value.startedAt };
  } catch {
    return undefined;
  }
}

function writeHolder(dataDir: string, holder: DataDirHolder): void {
  const file = path.join(dataDir, HOLDER_FILE);
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(holder) + '\n');
  renameSync(temp, file);
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}
