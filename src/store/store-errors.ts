import { ZonalError } from '../errors';

/** Who holds a data dir, as the holder wrote it next to its lock. */
export interface DataDirHolder {
  pid: number;
  host: string;
  /** When the holder took the lock, ISO 8601. */
  startedAt: string;
}

/**
 * Thrown at startup when another dispatcher (on this host or another one
 * sharing the volume) holds the data dir's lock. `holder` is undefined when
 * the holder has not written its name yet.
 */
export class DataDirInUseError extends ZonalError {
  readonly dataDir: string;
  readonly holder: DataDirHolder | undefined;

  constructor(dataDir: string, holder: DataDirHolder | undefined) {
    const who = holder === undefined ? 'another process (it has not written its name yet)' : `pid ${holder.pid} on host ${holder.host} (since ${holder.startedAt})`;
    super(
      'DATA_DIR_IN_USE',
      `data dir ${dataDir} is in use by ${who}. Two dispatchers on one data dir would hand out the same tasks; stop that one first, or give this one its own --data-dir. The lock dies with its process (kill -9 included), so a restart after a crash is never blocked.`,
    );
    this.name = 'DataDirInUseError';
    this.dataDir = dataDir;
    this.holder = holder;
  }
}

/**
 * Thrown at startup when the store file fails its integrity check (or
 * SQLite cannot read it at all), so the dispatcher does not serve a store
 * that would answer TASK_NOT_FOUND for tasks it acknowledged.
 */
export class StoreDamagedError extends ZonalError {
  readonly path: string;
  /** What the check found, first problems first. */
  readonly problems: readonly string[];
  /** SQLite cannot open the file or load its unfinished tasks (as opposed to: it reads, with damaged parts). */
  readonly unreadable: boolean;

  constructor(path: string, problems: readonly string[], unreadable: boolean, options?: { cause?: unknown }) {
    const found = problems.slice(0, 3).join('; ') + (problems.length > 3 ? `; and ${problems.length - 3} more` : '');
    super(
      'STORE_DAMAGED',
      `the store ${path} is damaged (${found}). Restore it from a backup, or recover what it holds with \`sqlite3 ${path} .recover | sqlite3 recovered.db\` and put that in its place. To start anyway, pass --allow-damaged-store (ZONAL_ALLOW_DAMAGED_STORE=true): it serves what can still be read, or, when SQLite cannot read the file at all, moves it aside and starts empty; tasks in the damaged part answer TASK_NOT_FOUND.`,
      options,
    );
    this.name = 'StoreDamagedError';
    this.path = path;
    this.problems = problems;
    this.unreadable = unreadable;
  }
}
