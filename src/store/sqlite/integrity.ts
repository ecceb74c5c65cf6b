import type Database from 'better-sqlite3';
import { closeSync, existsSync, openSync, readSync, renameSync, statSync } from 'node:fs';
import { freemem } from 'node:os';
import { StoreDamagedError } from '../store-errors';

/** The files of one database in WAL mode: the database, its WAL and its shared-memory index. */
const SQLITE_SUFFIXES = ['', '-wal', '-shm'] as const;

/** Problems `quick_check` lists at most (the first ones say enough). */
const MAX_PROBLEMS = 10;

/** Read size of the page-cache warm-up. */
const WARM_CHUNK_BYTES = 1 << 20;

/** SQLite result codes that mean the contents are damaged (not: missing, locked, no permission). */
export function isDamageError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

/**
 * Throws StoreDamagedError unless `db` passes `PRAGMA quick_check` and
 * carries a Zonal schema. quick_check reads every page of every b-tree but
 * skips matching index contents to rows, so it is O(size) and cheap next to
 * `integrity_check` (docs/operations.md has the time on 1 GB).
 *
 * `mustHaveSchema`: the file existed before this open, so it must hold a
 * schema; an empty one was cut short (new stores are created with theirs, see
 * createStoreFile).
 */
export function checkIntegrity(db: Database.Database, path: string, mustHaveSchema: boolean): void {
  warmPageCache(path);
  let problems: string[];
  try {
    const rows = db.pragma(`quick_check(${MAX_PROBLEMS})`) as { quick_check: string }[];
    problems = rows.map((r) => r.quick_check).filter((p) => p !== 'ok');
    if (problems.length === 0 && mustHaveSchema && db.pragma('user_version', { simple: true }) === 0) {
      problems = ['it holds no Zonal schema: the file was cut short, or it is not a Zonal store'];
    }
  } catch (err) {
    // quick_check gave up part way: damaged, though other parts may still read.
    if (isDamageError(err)) throw new StoreDamagedError(path, [`quick_check failed: ${(err as Error).message}`], false, { cause: err });
    throw err;
  }
  if (problems.length > 0) throw new StoreDamagedError(path, problems, false);
}

/**
 * Reads the file once, front to back, when it fits in half the free memory.
 * quick_check walks the b-trees in page order, which on a cold cache is
 * random I/O: on 1 GB this cut it from 9 s to 2 s (docs/operations.md).
 */
function warmPageCache(path: string): void {
  const size = statSync(path).size;
  if (size === 0 || size > freemem() / 2) return;
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(WARM_CHUNK_BYTES);
    for (let offset = 0; offset < size; ) {
      const read = readSync(fd, chunk, 0, chunk.length, offset);
      if (read === 0) break;
      offset += read;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * A WAL without its database is damage too: replaying it into a new file
 * would mix a lost store's last commits into a fresh one.
 */
export function checkOrphanWal(path: string): void {
  if (!existsSync(path) && existsSync(`${path}-wal`)) {
    throw new StoreDamagedError(path, [`the database file is missing but its write-ahead log ${path}-wal is there`], true);
  }
}

/**
 * Renames the database and its WAL and shm files to
 * `<path>.damaged-<time>` (+ `-wal`, `-shm`), keeping them for recovery.
 * Returns the new database path.
 */
export function moveAside(path: string, nowMs: number): string {
  const aside = `${path}.damaged-${new Date(nowMs).toISOString().replace(/[:.]/g, '-')}`;
  for (const suffix of SQLITE_SUFFIXES) {
    if (existsSync(path + suffix)) renameSync(path + suffix, aside + suffix);
  }
  return aside;
}
