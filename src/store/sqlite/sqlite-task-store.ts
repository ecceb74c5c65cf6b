import Database from 'better-sqlite3';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TaskRecord } from '../../core/task';
import type { TaskState } from '../../core/task-state';
import type { ErrorInfo } from '../../errors';
import { createLogger } from '../../log';
import { StoreDamagedError } from '../store-errors';
import type { TaskStore } from '../task-store';
import { checkIntegrity, checkOrphanWal, isDamageError, moveAside } from './integrity';
import { migrate } from './migrate';
import { FIND_BY_IDEMPOTENCY_KEY } from './sql/find-by-idempotency-key';
import { GET_TASK } from './sql/get-task';
import { LOAD_UNFINISHED } from './sql/load-unfinished';
import { PURGE_FINISHED } from './sql/purge-finished';
import { PURGE_KEYS } from './sql/purge-keys';
import { UPSERT_IDEMPOTENCY_KEY } from './sql/upsert-idempotency-key';
import { UPSERT_TASK } from './sql/upsert-task';

export interface SqliteTaskStoreOptions {
  /** Database file; its directory is created if missing. ':memory:' for tests. */
  path: string;
  /**
   * FULL (default): a resolved commit survives power loss (one fsync of the
   * WAL per commit call; callers batch many records into one commit).
   * NORMAL: survives a process crash, may lose the last commits on power loss.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /**
   * What open() does with a file that fails its integrity check. false
   * (default): throw StoreDamagedError. true: serve what can still be read; a
   * file SQLite cannot read at all is moved aside to `<path>.damaged-<time>`
   * and the store starts empty.
   */
  allowDamaged?: boolean;
  /** Clock for the name of a file moved aside. */
  nowMs?: () => number;
}

const log = createLogger('sqlite-store');

/** How long a writer waits for another connection's lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000;

/** A `tasks` row as better-sqlite3 binds and returns it (see migrations/001-init.ts). */
interface TaskRow {
  id: string;
  queue: string;
  priority: number;
  payload: Uint8Array;
  content_type: string;
  /** JSON object of string -> string. */
  labels: string;
  preferred_zone: string;
  idempotency_key: string;
  state: string;
  attempt: number;
  max_attempts: number;
  version: number;
  attempt_timeout_ms: number;
  schedule_to_start_timeout_ms: number;
  not_before_ms: number;
  created_ms: number;
  updated_ms: number;
  session_id: string;
  worker_id: string;
  attempt_deadline_ms: number;
  progress_permille: number;
  result: Uint8Array | null;
  /** JSON ErrorInfo, or NULL. */
  error: string | null;
  seq: number;
}

interface KeyRow {
  key: string;
  task_id: string;
  expires_ms: number;
}

/** Every statement, prepared once after migrations. */
interface Statements {
  upsertTask: Database.Statement<[TaskRow]>;
  upsertKey: Database.Statement<[KeyRow]>;
  getTask: Database.Statement<[string], TaskRow>;
  findByKey: Database.Statement<[string, number], TaskRow>;
  loadUnfinished: Database.Statement<[], TaskRow>;
  purgeKeys: Database.Statement<[number, number]>;
  purgeFinished: Database.Statement<[number, number]>;
}

/** The open connection and what hangs off it. */
interface Connection {
  db: Database.Database;
  statements: Statements;
  commit: (records: readonly TaskRecord[], idempotencyRetentionMs: number) => void;
  purge: (nowMs: number, finishedBeforeMs: number, limit: number) => number;
}

/**
 * The durable embedded TaskStore: one SQLite file in WAL mode, one
 * transaction (and so one fsync) per `commit` call.
 *
 * Lifecycle: new -> open() -> close(). Invariant: `connection` is set iff
 * open() succeeded and close() has not been called. Every other method
 * rejects before open() and after close().
 */
export class SqliteTaskStore implements TaskStore {
  private readonly path: string;
  private readonly synchronous: 'FULL' | 'NORMAL';
  private readonly allowDamaged: boolean;
  private readonly nowMs: () => number;
  private connection: Connection | undefined;
  private closed = false;

  constructor(options: SqliteTaskStoreOptions) {
    const synchronous = options.synchronous ?? 'FULL';
    if (synchronous !== 'FULL' && synchronous !== 'NORMAL') {
      throw new Error(`SqliteTaskStore: synchronous must be FULL or NORMAL, got ${String(synchronous)}`);
    }
    this.path = options.path;
    this.synchronous = synchronous;
    this.allowDamaged = options.allowDamaged ?? false;
    this.nowMs = options.nowMs ?? Date.now;
  }

  /**
   * Opens the file, checks its integrity (integrity.ts) and migrates it.
   * Throws StoreDamagedError for a damaged file unless `allowDamaged`.
   */
  async open(): Promise<void> {
    if (this.closed) throw this.closedError();
    if (this.connection) return;
    if (this.path === ':memory:' || this.path === '') {
      this.connection = this.openConnection(false);
      return;
    }
    mkdirSync(dirname(this.path), { recursive: true });
    try {
      checkOrphanWal(this.path);
      if (!existsSync(this.path)) createStoreFile(this.path);
      this.connection = this.openConnection(true);
    } catch (err) {
      if (!(err instanceof StoreDamagedError) || !this.allowDamaged) throw err;
      this.connection = this.openDamaged(err);
    }
  }

  /** --allow-damaged-store: serves what can be read; a file SQLite cannot read goes aside for an empty one. */
  private openDamaged(damage: StoreDamagedError): Connection {
    if (!damage.unreadable) {
      const served = this.serveAsIs();
      if (!(served instanceof StoreDamagedError)) {
        log.warn('serving a damaged store (--allow-damaged-store): tasks in the damaged part answer TASK_NOT_FOUND', { path: this.path, problems: damage.problems });
        return served;
      }
      damage = served;
    }
    const movedTo = moveAside(this.path, this.nowMs());
    log.warn('moved an unreadable store aside; starting with an empty one (--allow-damaged-store)', { path: this.path, movedTo, problems: damage.problems });
    createStoreFile(this.path);
    return this.openConnection(false);
  }

  /** The damaged file's connection if recovery can load its unfinished tasks, else why not. */
  private serveAsIs(): Connection | StoreDamagedError {
    let connection: Connection;
    try {
      connection = this.openConnection(false);
    } catch (err) {
      if (err instanceof StoreDamagedError) return err;
      throw err;
    }
    try {
      connection.statements.loadUnfinished.all();
      return connection;
    } catch (err) {
      connection.db.close();
      if (isDamageError(err)) return this.unreadable(err);
      throw err;
    }
  }

  /** Opens, checks (when `check`), configures and migrates; SQLite's damage codes become StoreDamagedError. */
  private openConnection(check: boolean): Connection {
    const db = new Database(this.path);
    try {
      if (check) checkIntegrity(db, this.path, true);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.synchronous}`);
      migrate(db);
      return connect(db);
    } catch (err) {
      db.close();
      throw isDamageError(err) ? this.unreadable(err) : err;
    }
  }

  private unreadable(err: unknown): StoreDamagedError {
    return new StoreDamagedError(this.path, [`SQLite cannot read it: ${(err as Error).message}`], true, { cause: err });
  }

  async commit(records: readonly TaskRecord[], idempotencyRetentionMs: number): Promise<void> {
    const connection = this.use();
    if (records.length > 0) connection.commit(records, idempotencyRetentionMs);
  }

  async get(taskId: string): Promise<TaskRecord | undefined> {
    const row = this.use().statements.getTask.get(taskId);
    return row && fromRow(row);
  }

  async findByIdempotencyKey(key: string, nowMs: number): Promise<TaskRecord | undefined> {
    const row = this.use().statements.findByKey.get(key, nowMs);
    return row && fromRow(row);
  }

  async loadUnfinished(): Promise<TaskRecord[]> {
    const statement = this.use().statements.loadUnfinished;
    try {
      return statement.all().map(fromRow);
    } catch (err) {
      throw isDamageError(err) ? this.unreadable(err) : err;
    }
  }

  async purge(nowMs: number, finishedBeforeMs: number, limit: number): Promise<number> {
    return this.use().purge(nowMs, finishedBeforeMs, limit);
  }

  async close(): Promise<void> {
    this.closed = true;
    const connection = this.connection;
    this.connection = undefined;
    connection?.db.close();
  }

  private use(): Connection {
    if (this.connection) return this.connection;
    if (this.closed) throw this.closedError();
    throw new Error(`SqliteTaskStore(${this.path}) is not open: call open() first`);
  }

  private closedError(): Error {
    return new Error(`SqliteTaskStore(${this.path}) is closed`);
  }
}

/**
 * Creates a new store file with its schema under a temporary name and
 * renames it into place, so a store file without a schema is always damage
 * (checkIntegrity relies on it), never a first start cut short.
 */
function createStoreFile(path: string): void {
  const temp = `${path}.creating`;
  for (const suffix of ['', '-wal', '-shm']) rmSync(temp + suffix, { force: true });
  const db = new Database(temp);
  try {
    db.pragma('journal_mode = WAL');
    migrate(db);
  } finally {
    db.close();
  }
  renameSync(temp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

function connect(db: Database.Database): Connection {
  const statements: Statements = {
    upsertTask: db.prepare<[TaskRow]>(UPSERT_TASK),
    upsertKey: db.prepare<[KeyRow]>(UPSERT_IDEMPOTENCY_KEY),
    getTask: db.prepare<[string], TaskRow>(GET_TASK),
    findByKey: db.prepare<[string, number], TaskRow>(FIND_BY_IDEMPOTENCY_KEY),
    loadUnfinished: db.prepare<[], TaskRow>(LOAD_UNFINISHED),
    purgeKeys: db.prepare<[number, number]>(PURGE_KEYS),
    purgeFinished: db.prepare<[number, number]>(PURGE_FINISHED),
  };
  const commit = db.transaction((records: readonly TaskRecord[], idempotencyRetentionMs: number) => {
    for (const record of records) {
      statements.upsertTask.run(toRow(record));
      if (record.idempotencyKey !== '') {
        statements.upsertKey.run({
          key: record.idempotencyKey,
          task_id: record.id,
          expires_ms: record.createdMs + idempotencyRetentionMs,
        });
      }
    }
  });
  const purge = db.transaction((nowMs: number, finishedBeforeMs: number, limit: number): number => {
    const keys = statements.purgeKeys.run(nowMs, limit).changes;
    const tasks = statements.purgeFinished.run(finishedBeforeMs, limit).changes;
    return keys + tasks;
  });
  return { db, statements, commit, purge };
}

function toRow(r: TaskRecord): TaskRow {
  return {
    id: r.id,
    queue: r.queue,
    priority: r.priority,
    payload: r.payload,
    content_type: r.contentType,
    labels: JSON.stringify(r.labels),
    preferred_zone: r.preferredZone,
    idempotency_key: r.idempotencyKey,
    state: r.state,
    attempt: r.attempt,
    max_attempts: r.maxAttempts,
    version: r.version,
    attempt_timeout_ms: r.attemptTimeoutMs,
    schedule_to_start_timeout_ms: r.scheduleToStartTimeoutMs,
    not_before_ms: r.notBeforeMs,
    created_ms: r.createdMs,
    updated_ms: r.updatedMs,
    session_id: r.sessionId,
    worker_id: r.workerId,
    attempt_deadline_ms: r.attemptDeadlineMs,
    progress_permille: r.progressPermille,
    result: r.result,
    error: r.error === null ? null : JSON.stringify(r.error),
    seq: r.seq,
  };
}

/** Trusts the row: the schema's CHECK keeps `state` a TaskState, and only toRow writes the JSON. */
function fromRow(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    queue: row.queue,
    priority: row.priority,
    payload: row.payload,
    contentType: row.content_type,
    labels: JSON.parse(row.labels) as Record<string, string>,
    preferredZone: row.preferred_zone,
    idempotencyKey: row.idempotency_key,
    state: row.state as TaskState,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    version: row.version,
    attemptTimeoutMs: row.attempt_timeout_ms,
    scheduleToStartTimeoutMs: row.schedule_to_start_timeout_ms,
    notBeforeMs: row.not_before_ms,
    createdMs: row.created_ms,
    updatedMs: row.updated_ms,
    sessionId: row.session_id,
    workerId: row.worker_id,
    attemptDeadlineMs: row.attempt_deadline_ms,
    progressPermille: row.progress_permille,
    result: row.result,
    error: row.error === null ? null : (JSON.parse(row.error) as ErrorInfo),
    seq: row.seq,
  };
}
