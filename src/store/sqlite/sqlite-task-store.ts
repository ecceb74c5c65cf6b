import { claimInStore } from '../../core/claim-rules';
import Database from 'better-sqlite3';
import { cancelInStore } from '../../core/store-cancel';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { emptyOutcome, holdsSameWrite, type CommitBatch, type CommitOutcome, type StateWrite } from '../../core/commit-batch';
import type { TaskRecord } from '../../core/task-fields';
import { isTerminal } from '../../core/task-state';
import type { ErrorInfo } from '../../errors';
import { createLogger } from '../../log';
import { StoreDamagedError } from '../store-errors';
import type { DispatcherEntry, HeartbeatOutcome, ReadyDepth, StoreCancelOutcome, StoreEvent, StoreHealth, SweepCandidates, TaskStore } from '../task-store';
import { checkIntegrity, checkOrphanWal, isDamageError, moveAside } from './integrity';
import { migrate } from './migrate';
import { CANCEL_TASK } from './sql/cancel-task';
import { CLAIM_AT_ONCE, CLAIM_SPILLED } from './sql/claim-ready';
import { CLAIM_TASK } from './sql/claim-task';
import { DISPATCHER_LEASE, ENTER_DISPATCHER, EXPIRE_DISPATCHERS, LEAVE_DISPATCHER, LIVE_PEERS, RENEW_DISPATCHER } from './sql/dispatchers';
import { GET_TASK } from './sql/get-task';
import { GET_TASKS } from './sql/get-tasks';
import { IDEMPOTENCY_KEY_HOLDER } from './sql/idempotency-key-holder';
import { INSERT_TASK } from './sql/insert-task';
import { NEXT_READY_AT, NEXT_SPILL_READY_AT } from './sql/next-claimable';
import { OWNED_TASKS } from './sql/owned-tasks';
import { DELETE_TASK, DELETE_TASK_KEY, FINISHED_TO_PURGE, PURGE_KEYS } from './sql/purge';
import { READY_DEPTH } from './sql/ready-depth';
import { HELD_KEYS, PENDING_IN_QUEUE } from './sql/admission';
import { MAX_SEQ, READ_UNFINISHED } from './sql/read-unfinished';
import { LEASE_EXPIRED, START_EXPIRED } from './sql/sweep';
import { TAKE_IDEMPOTENCY_KEY } from './sql/take-idempotency-key';
import { WRITE_STATE } from './sql/write-state';
import { WalCheckpointer } from './wal-checkpointer';
import { fromRow, insertValues, stateValues, type TaskRow } from './task-row';

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
const CLAIM_AT_ONCE_PHASE = 1;
const CLAIM_SPILLED_PHASE = 2;

/** How long a writer waits for another connection's lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000;

type Bind = Record<string, unknown>;

/** Every statement, prepared once after migrations. */
interface Statements {
  /** Positional: the columns (insertValues), then seq. */
  insertTask: Database.Statement<unknown[]>;
  takeKey: Database.Statement<[Bind]>;
  keyHolder: Database.Statement<[string], { task_id: string }>;
  /** Positional: the state columns (stateValues), then seq, id, expected version. */
  writeState: Database.Statement<unknown[]>;
  getTask: Database.Statement<[string], TaskRow>;
  getTasks: Database.Statement<[string], TaskRow>;
  claimAtOnce: Database.Statement<[Bind], TaskRow>;
  claimSpilled: Database.Statement<[Bind], TaskRow>;
  claimTask: Database.Statement<[string, string, number, string, string, string, number, number, string, number]>;
  nextReadyAt: Database.Statement<[Bind], { at: number | null }>;
  nextSpillReadyAt: Database.Statement<[Bind], { at: number | null }>;
  leaseExpired: Database.Statement<[Bind], TaskRow>;
  startExpired: Database.Statement<[Bind], TaskRow>;
  ownedTasks: Database.Statement<[string], TaskRow>;
  cancelTask: Database.Statement<[Bind]>;
  expireDispatchers: Database.Statement<[Bind]>;
  enterDispatcher: Database.Statement<[Bind]>;
  dispatcherLease: Database.Statement<[string], { lease_expires_ms: number }>;
  renewDispatcher: Database.Statement<[Bind]>;
  livePeers: Database.Statement<[Bind], { n: number }>;
  leaveDispatcher: Database.Statement<[string]>;
  purgeKeys: Database.Statement<[number, number]>;
  finishedToPurge: Database.Statement<[number, number], { id: string; idempotency_key: string }>;
  deleteTask: Database.Statement<[string]>;
  deleteTaskKey: Database.Statement<[string, string]>;
  readUnfinished: Database.Statement<[], TaskRow>;
}

/** The open connection and what hangs off it. */
interface Connection {
  db: Database.Database;
  statements: Statements;
  commit: (batch: CommitBatch) => CommitOutcome;
  register: (entry: DispatcherEntry, nowMs: number, leaseExpiresMs: number) => void;
  heartbeat: (owner: string, nowMs: number, leaseExpiresMs: number) => HeartbeatOutcome;
  cancel: (taskId: string, nowMs: number, error: ErrorInfo) => StoreCancelOutcome | undefined;
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
  readonly kind = 'sqlite';
  /** One process per file: the dispatcher holds its data dir's lock (data-dir-lock.ts). */
  readonly exclusive = true;
  private readonly path: string;
  private readonly synchronous: 'FULL' | 'NORMAL';
  private readonly allowDamaged: boolean;
  private readonly nowMs: () => number;
  private connection: Connection | undefined;
  /** Copies the WAL back on a thread of its own (a file store opened normally; not :memory:, not a damaged file). */
  private checkpointer: WalCheckpointer | undefined;
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
      this.checkpointer = startCheckpointer(this.connection.db, this.path);
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
      connection.statements.readUnfinished.all();
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

  async register(entry: DispatcherEntry, nowMs: number, leaseExpiresMs: number): Promise<void> {
    this.use().register(entry, nowMs, leaseExpiresMs);
    this.checkpointer?.wrote();
  }

  async heartbeat(owner: string, nowMs: number, leaseExpiresMs: number): Promise<HeartbeatOutcome> {
    const outcome = this.use().heartbeat(owner, nowMs, leaseExpiresMs);
    this.checkpointer?.wrote();
    return outcome;
  }

  async unregister(owner: string): Promise<void> {
    this.use().statements.leaveDispatcher.run(owner);
    this.checkpointer?.wrote();
  }

  async commit(batch: CommitBatch): Promise<CommitOutcome> {
    const outcome = this.use().commit(batch);
    this.checkpointer?.wrote();
    return outcome;
  }

  async sweep(owner: string, nowMs: number, limit: number): Promise<SweepCandidates> {
    const s = this.use().statements;
    return {
      leaseExpired: s.leaseExpired.all({ owner, now: nowMs, limit }).map(fromRow),
      startExpired: s.startExpired.all({ now: nowMs, limit }).map(fromRow),
    };
  }

  async owned(owner: string): Promise<TaskRecord[]> {
    return this.use().statements.ownedTasks.all(owner).map(fromRow);
  }

  async cancel(taskId: string, nowMs: number, error: ErrorInfo): Promise<StoreCancelOutcome | undefined> {
    const outcome = this.use().cancel(taskId, nowMs, error);
    this.checkpointer?.wrote();
    return outcome;
  }

  async get(taskId: string): Promise<TaskRecord | undefined> {
    const row = this.use().statements.getTask.get(taskId);
    return row && fromRow(row);
  }

  async getMany(ids: readonly string[]): Promise<TaskRecord[]> {
    if (ids.length === 0) return [];
    return this.use().statements.getTasks.all(JSON.stringify(ids)).map(fromRow);
  }

  async purge(nowMs: number, finishedBeforeMs: number, limit: number): Promise<number> {
    const purged = this.use().purge(nowMs, finishedBeforeMs, limit);
    if (purged > 0) this.checkpointer?.wrote();
    return purged;
  }

  async readyDepth(nowMs: number): Promise<ReadyDepth[]> {
    const rows = this.use().db.prepare(READY_DEPTH).all(nowMs) as { queue: string; zone: string; n: number }[];
    return rows.map((r) => ({ queue: r.queue, zone: r.zone, count: r.n }));
  }

  async pendingCount(queue: string): Promise<number> {
    const row = this.use().db.prepare(PENDING_IN_QUEUE).get(queue) as { n: number } | undefined;
    return row?.n ?? 0;
  }

  async heldKeys(keys: readonly string[], nowMs: number): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = this.use().db.prepare(HELD_KEYS).all(JSON.stringify(keys), nowMs) as { key: string }[];
    return new Set(rows.map((r) => r.key));
  }

  /** One process uses the file: there is nobody else to hear from. */
  subscribe(_listener: (event: StoreEvent) => void): () => void {
    return () => undefined;
  }

  health(): StoreHealth {
    if (this.connection !== undefined) return { ok: true, detail: `SQLite ${this.path}` };
    return { ok: false, detail: this.closed ? 'closed' : 'not open' };
  }

  async close(): Promise<void> {
    this.closed = true;
    const connection = this.connection;
    this.connection = undefined;
    const checkpointer = this.checkpointer;
    this.checkpointer = undefined;
    // The thread's connection first: the last connection to close checkpoints the WAL into the file.
    await checkpointer?.stop();
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

/** The background checkpointer; without one (it could not start) the connection keeps SQLite's automatic checkpoint. */
function startCheckpointer(db: Database.Database, path: string): WalCheckpointer | undefined {
  try {
    return new WalCheckpointer(db, path, BUSY_TIMEOUT_MS);
  } catch (err) {
    log.warn('could not start the background WAL checkpoint thread; commits checkpoint as SQLite does by default', { error: err instanceof Error ? err.message : String(err) });
    return undefined;
  }
}

function connect(db: Database.Database): Connection {
  const statements: Statements = {
    insertTask: db.prepare(INSERT_TASK),
    takeKey: db.prepare(TAKE_IDEMPOTENCY_KEY),
    keyHolder: db.prepare(IDEMPOTENCY_KEY_HOLDER),
    writeState: db.prepare(WRITE_STATE),
    getTask: db.prepare(GET_TASK),
    getTasks: db.prepare(GET_TASKS),
    claimAtOnce: db.prepare(CLAIM_AT_ONCE),
    claimSpilled: db.prepare(CLAIM_SPILLED),
    claimTask: db.prepare(CLAIM_TASK),
    nextReadyAt: db.prepare(NEXT_READY_AT),
    nextSpillReadyAt: db.prepare(NEXT_SPILL_READY_AT),
    leaseExpired: db.prepare(LEASE_EXPIRED),
    startExpired: db.prepare(START_EXPIRED),
    ownedTasks: db.prepare(OWNED_TASKS),
    cancelTask: db.prepare(CANCEL_TASK),
    expireDispatchers: db.prepare(EXPIRE_DISPATCHERS),
    enterDispatcher: db.prepare(ENTER_DISPATCHER),
    dispatcherLease: db.prepare(DISPATCHER_LEASE),
    renewDispatcher: db.prepare(RENEW_DISPATCHER),
    livePeers: db.prepare(LIVE_PEERS),
    leaveDispatcher: db.prepare(LEAVE_DISPATCHER),
    purgeKeys: db.prepare(PURGE_KEYS),
    finishedToPurge: db.prepare(FINISHED_TO_PURGE),
    deleteTask: db.prepare(DELETE_TASK),
    deleteTaskKey: db.prepare(DELETE_TASK_KEY),
    readUnfinished: db.prepare(READ_UNFINISHED),
  };
  const s = statements;
  // The store is used by one process (its data-dir lock), so FIFO places are numbered here.
  let seq = (db.prepare(MAX_SEQ).get() as { seq: number }).seq;

  /** Applies one write; null when applied, else what the row holds now (undefined: gone). */
  const applyWrite = (write: StateWrite): TaskRecord | undefined | null => {
    const next = write.record;
    const requeueBack = next.state === 'PENDING' && write.requeue === 'back';
    const changes = s.writeState.run(...stateValues(next), requeueBack ? ++seq : null, next.id, write.expectVersion).changes;
    if (changes === 1) return null;
    const row = s.getTask.get(next.id);
    if (row === undefined) return undefined;
    const current = fromRow(row);
    return holdsSameWrite(current, next) ? null : current;
  };

  const commit = db.transaction((batch: CommitBatch): CommitOutcome => {
    const outcome = emptyOutcome(batch.claims.length);
    for (const record of batch.inserts) {
      if (record.idempotencyKey !== '') {
        const took = s.takeKey.run({ key: record.idempotencyKey, task_id: record.id, expires_ms: record.createdMs + batch.idempotencyRetentionMs, now: batch.nowMs }).changes;
        const holder = took === 1 ? undefined : s.keyHolder.get(record.idempotencyKey);
        if (holder !== undefined && holder.task_id !== record.id) {
          outcome.duplicates.set(record.id, holder.task_id);
          continue;
        }
      }
      s.insertTask.run(...insertValues(record), ++seq);
    }
    for (const write of batch.writes) {
      const conflict = applyWrite(write);
      if (conflict !== null) outcome.conflicts.set(write.record.id, conflict);
    }
    // Every group's at-once tasks first, then (for slots still free) the spilled ones: a group's
    // spill never takes a task that a later group of the same batch takes at once.
    for (const phase of [CLAIM_AT_ONCE_PHASE, CLAIM_SPILLED_PHASE]) {
      batch.claims.forEach((group, g) => {
        const claimed = outcome.claimed[g]!;
        const free = group.slots.length - claimed.length;
        if (free <= 0) return;
        const bind = { queue: group.queue, now: batch.nowMs, spilled_by: batch.nowMs - batch.spilloverDelayMs, zone: group.zone, dispatcher_zone: batch.dispatcherZone, limit: free };
        const rows = (phase === CLAIM_AT_ONCE_PHASE ? s.claimAtOnce : s.claimSpilled).all(bind);
        for (const row of rows) {
          const task = fromRow(row);
          const slot = claimed.length;
          const { sessionId, workerId } = group.slots[slot]!;
          s.claimTask.run(batch.owner, batch.dispatcherZone, batch.leaseExpiresMs, sessionId, workerId, group.zone, batch.nowMs, batch.nowMs, task.id, task.version);
          claimInStore(task, batch, { sessionId, workerId, zone: group.zone });
          claimed.push({ task, slot });
        }
      });
    }
    batch.claims.forEach((group, g) => {
      if (outcome.claimed[g]!.length >= group.slots.length) return;
      const bind = { queue: group.queue, now: batch.nowMs, spilled_by: batch.nowMs - batch.spilloverDelayMs, zone: group.zone, dispatcher_zone: batch.dispatcherZone };
      const ready = s.nextReadyAt.get(bind)?.at ?? null;
      const spill = s.nextSpillReadyAt.get(bind)?.at ?? null;
      const candidates = [ready, spill === null ? null : spill + batch.spilloverDelayMs].filter((v): v is number => v !== null);
      outcome.nextClaimAtMs[g] = candidates.length > 0 ? Math.min(...candidates) : undefined;
    });
    return outcome;
  });

  const register = db.transaction((entry: DispatcherEntry, nowMs: number, leaseExpiresMs: number): void => {
    s.expireDispatchers.run({ dispatcher_id: entry.dispatcherId, all: 1 });
    s.enterDispatcher.run({ owner: entry.owner, dispatcher_id: entry.dispatcherId, zone: entry.zone, address: entry.address, now: nowMs, lease_expires_ms: leaseExpiresMs });
  });

  const heartbeat = db.transaction((owner: string, nowMs: number, leaseExpiresMs: number): HeartbeatOutcome => {
    const lease = s.dispatcherLease.get(owner)?.lease_expires_ms;
    s.renewDispatcher.run({ owner, lease_expires_ms: leaseExpiresMs });
    return { wasLive: lease !== undefined && lease >= nowMs, peers: s.livePeers.get({ owner, now: nowMs })?.n ?? 0 };
  });

  const cancel = db.transaction((taskId: string, nowMs: number, error: ErrorInfo): StoreCancelOutcome | undefined => {
    const row = s.getTask.get(taskId);
    if (row === undefined) return undefined;
    const task = fromRow(row);
    if (isTerminal(task.state)) return { task, cancelled: false, previousOwner: '', previousAttempt: 0 };
    s.cancelTask.run({ id: taskId, version: task.version, error: JSON.stringify(error), now: nowMs });
    const previousOwner = task.owner;
    const previousAttempt = task.attempt;
    cancelInStore(task, nowMs, error);
    return { task, cancelled: true, previousOwner, previousAttempt };
  });

  const purge = db.transaction((nowMs: number, finishedBeforeMs: number, limit: number): number => {
    const keys = s.purgeKeys.run(nowMs, limit).changes;
    const finished = s.finishedToPurge.all(finishedBeforeMs, limit);
    for (const { id, idempotency_key: key } of finished) {
      if (key !== '') s.deleteTaskKey.run(key, id);
      s.deleteTask.run(id);
    }
    return keys + finished.length;
  });
  return { db, statements, commit, register, heartbeat, cancel, purge };
}
