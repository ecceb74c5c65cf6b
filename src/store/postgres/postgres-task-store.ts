import { Pool, types as pgTypes, type PoolClient, type PoolConfig, type QueryResultRow } from 'pg';
import { emptyOutcome, type CommitBatch, type CommitOutcome } from '../../core/commit-batch';
import type { TaskRecord } from '../../core/task-fields';
import type { ErrorInfo } from '../../errors';
import { createLogger } from '../../log';
import type { DispatcherEntry, HeartbeatOutcome, ReadyDepth, SharedLatency, SharedLatencyRow, StoreCancelOutcome, StoreEvent, StoreHealth, SweepCandidates, TaskStore } from '../task-store';
import { migratePostgres } from './migrate';
import { Notifications } from './notifications';
import { CANCEL_TASK } from './sql/cancel-task';
import { BEGIN_CLAIMING, CLAIM_AT_ONCE, CLAIM_SPILLED, NEXT_CLAIMABLE } from './sql/claim-tasks';
import { ENTER_DISPATCHER, HEARTBEAT, LEAVE_DISPATCHER } from './sql/dispatchers';
import { GET_TASK, GET_TASKS, OWNED_TASKS } from './sql/get-tasks';
import { INSERT_TASKS, KEY_HOLDERS } from './sql/insert-tasks';
import { PURGE } from './sql/purge';
import { READY_DEPTH } from './sql/ready-depth';
import { HELD_KEYS, PENDING_IN_QUEUE } from './sql/admission';
import { PURGE_LATENCY_SLOTS, READ_LATENCY_SLOTS, WRITE_LATENCY_SLOTS } from './sql/latency-slots';
import { SWEEP } from './sql/sweep';
import { WRITE_STATES } from './sql/write-states';
import { fromPgRow, insertColumns, stateColumns, type PgTaskRow } from './task-row';

const log = createLogger('postgres-store');

export interface PostgresTaskStoreOptions {
  /** A pg connection string, without Zonal's own parameters (app/store-url.ts strips them). */
  url: string;
  /** The schema every table lives in (created if missing). Default `zonal`. */
  schema?: string;
  /** Most connections this dispatcher opens (plus one for LISTEN). Default 8. */
  poolMax?: number;
  /** A statement running longer is cancelled by the server. Default 15 s. */
  statementTimeoutMs?: number;
  /** Giving up on a new connection. Default 3 s. */
  connectTimeoutMs?: number;
  /**
   * A group commit (or any single call) not done by then is given up and
   * its connection closed: a database that stops answering (a network
   * partition) fails calls in this time instead of hanging them, and the
   * dispatcher's breaker then fails the rest at once. Default 5 s.
   */
  callTimeoutMs?: number;
}

const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
/** NOTIFY payloads are at most 8000 bytes; a longer queue list says "everything" instead. */
const MAX_NOTIFY_QUEUES = 40;

/**
 * int8 as a number: every integer Zonal stores stays below 2^53 (versions,
 * instants and counts are bounded where they enter), so no precision is
 * lost. Set per pool, not globally, so an application's own pg use is untouched.
 */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? (value: string) => Number(value) : pgTypes.getTypeParser(oid, format ?? 'text'))) as typeof pgTypes.getTypeParser,
};

/**
 * The shared TaskStore: PostgreSQL, for several dispatchers in several
 * zones. Claims take ready tasks with FOR UPDATE SKIP LOCKED, so concurrent
 * claims never take the same task nor wait for each other; every later
 * change is conditional on the version read; a commit is one transaction of
 * a few multi-row statements (unnest arrays), never a round trip per task.
 * Other dispatchers are woken with NOTIFY (ready tasks, a cancel of a task
 * one of them holds); a dispatcher alone on the store sends none.
 *
 * Lifecycle: new -> open() (pool, migrations, LISTEN) -> close().
 */
export class PostgresTaskStore implements TaskStore {
  readonly kind = 'postgres';
  readonly exclusive = false;
  private readonly schema: string;
  private readonly config: PoolConfig;
  private readonly channels: { ready: string; cancel: string };
  private pool: Pool | undefined;
  private notifications: Notifications | undefined;
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  private closed = false;
  private peers = 0;
  /** The dispatcher this store serves (set by register). */
  private self = '';
  private lastOkMs = 0;
  private lastError: { atMs: number; message: string } | undefined;
  private readonly callTimeoutMs: number;

  constructor(options: PostgresTaskStoreOptions) {
    this.schema = options.schema ?? 'zonal';
    if (!SCHEMA_PATTERN.test(this.schema)) throw new RangeError(`PostgreSQL schema "${this.schema}" must be a lower-case SQL identifier (letters, digits, _)`);
    const statementTimeoutMs = options.statementTimeoutMs ?? 15_000;
    this.callTimeoutMs = options.callTimeoutMs ?? 5_000;
    this.config = {
      connectionString: options.url,
      max: options.poolMax ?? 8,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 3_000,
      // The server cancels a statement that runs too long; the client gives up on a server that does not answer at all.
      query_timeout: Math.min(statementTimeoutMs, options.callTimeoutMs ?? 5_000),
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      options: `-c search_path=${this.schema} -c statement_timeout=${statementTimeoutMs} -c idle_in_transaction_session_timeout=${statementTimeoutMs * 2}`,
      types: TYPES,
      application_name: 'zonal-dispatcher',
    };
    this.channels = { ready: `zonal_ready_${this.schema}`, cancel: `zonal_cancel_${this.schema}` };
  }

  async open(): Promise<void> {
    if (this.closed) throw new Error(`PostgresTaskStore(${this.schema}) is closed`);
    if (this.pool !== undefined) return;
    const pool = new Pool(this.config);
    pool.on('error', (err) => this.failed(err));
    try {
      const client = await pool.connect();
      try {
        await migratePostgres(client, this.schema);
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    this.pool = pool;
    this.lastOkMs = Date.now();
    this.notifications = new Notifications(this.config, this.channels, (event) => this.emit(event), this.callTimeoutMs, (owner) => {
      if (owner !== this.self) this.peers = Math.max(this.peers, 1);
    });
    await this.notifications.start();
  }

  async register(entry: DispatcherEntry, nowMs: number, leaseExpiresMs: number): Promise<void> {
    this.self = entry.owner;
    await this.query(ENTER_DISPATCHER, [entry.owner, entry.dispatcherId, entry.zone, entry.address, nowMs, leaseExpiresMs], 'zonal_enter_dispatcher');
    // Tell the others at once: a dispatcher alone sends no wake-ups, and would otherwise learn of this one only at its next heartbeat.
    await this.query('SELECT pg_notify($1, $2)', [this.channels.ready, JSON.stringify({ hello: entry.owner })], 'zonal_notify');
    await this.heartbeat(entry.owner, nowMs, leaseExpiresMs);
  }

  async heartbeat(owner: string, nowMs: number, leaseExpiresMs: number): Promise<HeartbeatOutcome> {
    const { rows } = await this.query<{ lease: number | null; peers: number }>(HEARTBEAT, [owner, nowMs, leaseExpiresMs], 'zonal_heartbeat');
    const lease = rows[0]?.lease ?? null;
    this.peers = Number(rows[0]?.peers ?? 0);
    return { wasLive: lease !== null && lease >= nowMs, peers: this.peers };
  }

  async unregister(owner: string): Promise<void> {
    await this.query(LEAVE_DISPATCHER, [owner], 'zonal_leave_dispatcher');
  }

  async commit(batch: CommitBatch): Promise<CommitOutcome> {
    const outcome = emptyOutcome(batch.claims.length);
    // Read every record into its columns first: one that cannot be read fails the commit before anything is sent.
    const insertParams = batch.inserts.length > 0 ? [...insertColumns(batch.inserts), batch.nowMs, batch.idempotencyRetentionMs] : undefined;
    const writeRecords = batch.writes.map((w) => w.record);
    const writeParams =
      batch.writes.length > 0
        ? [...stateColumns(writeRecords), writeRecords.map((r) => r.id), batch.writes.map((w) => w.expectVersion), batch.writes.map((w) => w.requeue === 'back')]
        : undefined;
    const ready = new Map<string, number>();
    const noteReady = (record: TaskRecord): void => {
      if (record.state === 'PENDING') ready.set(record.queue, Math.min(ready.get(record.queue) ?? Infinity, record.readyAtMs));
    };
    await this.transaction(batch.claims.length > 0 ? BEGIN_CLAIMING : 'BEGIN', async (client) => {
      if (insertParams !== undefined) {
        const unclaimed = await this.run<{ id: string; idempotency_key: string }>(client, INSERT_TASKS, insertParams, 'zonal_insert_tasks');
        if (unclaimed.rows.length > 0) {
          const holders = await this.run<{ key: string; task_id: string }>(client, KEY_HOLDERS, [unclaimed.rows.map((r) => r.idempotency_key)], 'zonal_key_holders');
          const holderOf = new Map(holders.rows.map((r) => [r.key, r.task_id]));
          for (const { id, idempotency_key: key } of unclaimed.rows) {
            const holder = holderOf.get(key);
            if (holder !== undefined && holder !== id) outcome.duplicates.set(id, holder);
          }
        }
        for (const record of batch.inserts) if (!outcome.duplicates.has(record.id)) noteReady(record);
      }
      if (writeParams !== undefined) {
        const written = await this.run<{ id: string }>(client, WRITE_STATES, writeParams, 'zonal_write_states');
        const done = new Set(written.rows.map((r) => r.id));
        const missed = writeRecords.filter((r) => !done.has(r.id)).map((r) => r.id);
        if (missed.length > 0) {
          const current = await this.run<PgTaskRow>(client, GET_TASKS, [missed], 'zonal_get_tasks');
          const byId = new Map(current.rows.map((row) => [String(row['id']), fromPgRow(row)]));
          for (const id of missed) outcome.conflicts.set(id, byId.get(id));
        }
        for (const record of writeRecords) if (done.has(record.id)) noteReady(record);
      }
      // Every group's at-once tasks first, then (for slots still free) the spilled ones: a group's
      // spill never takes a task that a later group of the same batch takes at once.
      const spilledBy = batch.nowMs - batch.spilloverDelayMs;
      for (const phase of ['at-once', 'spilled'] as const) {
        for (const [g, group] of batch.claims.entries()) {
          const claimed = outcome.claimed[g]!;
          const free = group.slots.slice(claimed.length);
          if (free.length === 0) continue;
          const params: unknown[] = [group.queue, batch.nowMs, group.zone, batch.dispatcherZone, free.map((s) => s.sessionId), free.map((s) => s.workerId), batch.owner, batch.leaseExpiresMs];
          const rows =
            phase === 'at-once'
              ? await this.run<PgTaskRow & { slot: number }>(client, CLAIM_AT_ONCE, params, 'zonal_claim_at_once')
              : await this.run<PgTaskRow & { slot: number }>(client, CLAIM_SPILLED, [...params, spilledBy], 'zonal_claim_spilled');
          const offset = claimed.length;
          for (const row of rows.rows) claimed.push({ task: fromPgRow(row), slot: offset + Number(row.slot) });
        }
      }
      for (const [g, group] of batch.claims.entries()) {
        if (outcome.claimed[g]!.length >= group.slots.length) continue;
        const next = await this.run<{ ready_at: number | null; spill_ready_at: number | null }>(client, NEXT_CLAIMABLE, [group.queue, batch.nowMs, spilledBy, group.zone, batch.dispatcherZone], 'zonal_next_claimable');
        const row = next.rows[0];
        const candidates = [row?.ready_at ?? null, row?.spill_ready_at == null ? null : row.spill_ready_at + batch.spilloverDelayMs].filter((v): v is number => v !== null);
        outcome.nextClaimAtMs[g] = candidates.length > 0 ? Math.min(...candidates) : undefined;
      }
      // Other dispatchers hear of ready tasks at once; alone on the store, there is nobody to tell.
      if (ready.size > 0 && this.peers > 0) {
        const queues = [...ready.keys()];
        const payload = JSON.stringify(queues.length > MAX_NOTIFY_QUEUES ? { q: [] } : { q: queues, at: Math.min(...ready.values()) });
        await this.run(client, 'SELECT pg_notify($1, $2)', [this.channels.ready, payload], 'zonal_notify');
      }
    });
    return outcome;
  }

  async sweep(owner: string, nowMs: number, limit: number): Promise<SweepCandidates> {
    const { rows } = await this.query<PgTaskRow & { sweep_kind: 'lease' | 'start' }>(SWEEP, [owner, nowMs, limit], 'zonal_sweep');
    const found: SweepCandidates = { leaseExpired: [], startExpired: [] };
    for (const row of rows) (row.sweep_kind === 'lease' ? found.leaseExpired : found.startExpired).push(fromPgRow(row));
    return found;
  }

  async owned(owner: string): Promise<TaskRecord[]> {
    return (await this.query<PgTaskRow>(OWNED_TASKS, [owner], 'zonal_owned_tasks')).rows.map(fromPgRow);
  }

  async cancel(taskId: string, nowMs: number, error: ErrorInfo): Promise<StoreCancelOutcome | undefined> {
    const { rows } = await this.query<PgTaskRow & { previous_owner: string; previous_attempt: number }>(CANCEL_TASK, [taskId, JSON.stringify(error), nowMs, this.channels.cancel], 'zonal_cancel_task');
    const row = rows[0];
    if (row !== undefined) return { task: fromPgRow(row), cancelled: true, previousOwner: row.previous_owner, previousAttempt: Number(row.previous_attempt) };
    const task = await this.get(taskId);
    return task === undefined ? undefined : { task, cancelled: false, previousOwner: '', previousAttempt: 0 };
  }

  async get(taskId: string): Promise<TaskRecord | undefined> {
    const row = (await this.query<PgTaskRow>(GET_TASK, [taskId], 'zonal_get_task')).rows[0];
    return row === undefined ? undefined : fromPgRow(row);
  }

  async getMany(ids: readonly string[]): Promise<TaskRecord[]> {
    if (ids.length === 0) return [];
    return (await this.query<PgTaskRow>(GET_TASKS, [ids], 'zonal_get_tasks')).rows.map(fromPgRow);
  }

  async purge(nowMs: number, finishedBeforeMs: number, limit: number): Promise<number> {
    const row = (await this.query<{ keys: string; tasks: string }>(PURGE, [nowMs, finishedBeforeMs, limit], 'zonal_purge')).rows[0];
    return Number(row?.keys ?? 0) + Number(row?.tasks ?? 0);
  }

  async readyDepth(nowMs: number): Promise<ReadyDepth[]> {
    const { rows } = await this.query<{ queue: string; zone: string; n: string }>(READY_DEPTH, [nowMs], 'zonal_ready_depth');
    return rows.map((r) => ({ queue: r.queue, zone: r.zone, count: Number(r.n) }));
  }

  async pendingCount(queue: string): Promise<number> {
    const { rows } = await this.query<{ n: string }>(PENDING_IN_QUEUE, [queue], 'zonal_pending_in_queue');
    return Number(rows[0]?.n ?? 0);
  }

  async heldKeys(keys: readonly string[], nowMs: number): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const { rows } = await this.query<{ key: string }>(HELD_KEYS, [keys, nowMs], 'zonal_held_keys');
    return new Set(rows.map((r) => r.key));
  }

  readonly sharedLatency: SharedLatency = {
    write: async (dispatcherId, rows) => {
      if (rows.length === 0) return;
      await this.query(
        WRITE_LATENCY_SLOTS,
        [dispatcherId, rows.map((r) => r.series), rows.map((r) => r.fromZone), rows.map((r) => r.toZone), rows.map((r) => r.slotMs), rows.map((r) => JSON.stringify(r.buckets)), rows.map((r) => r.sumMs)],
        'zonal_write_latency_slots',
      );
    },
    read: async (sinceMs, selfId) => {
      const { rows } = await this.query<{ dispatcher_id: string; series: string; from_zone: string; to_zone: string; slot_ms: string; buckets: string[]; sum_ms: number }>(
        READ_LATENCY_SLOTS,
        [sinceMs, selfId],
        'zonal_read_latency_slots',
      );
      const out = new Map<string, SharedLatencyRow[]>();
      for (const r of rows) {
        const list = out.get(r.dispatcher_id) ?? [];
        list.push({ series: r.series, fromZone: r.from_zone, toZone: r.to_zone, slotMs: Number(r.slot_ms), buckets: r.buckets.map(Number), sumMs: Number(r.sum_ms) });
        out.set(r.dispatcher_id, list);
      }
      return out;
    },
    purge: async (beforeMs) => {
      await this.query(PURGE_LATENCY_SLOTS, [beforeMs], 'zonal_purge_latency_slots');
    },
  };

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  health(): StoreHealth {
    if (this.closed) return { ok: false, detail: 'closed' };
    if (this.pool === undefined) return { ok: false, detail: 'not open' };
    const error = this.lastError;
    if (error !== undefined && error.atMs >= this.lastOkMs) return { ok: false, detail: `PostgreSQL (schema ${this.schema}) failed: ${error.message}` };
    return { ok: true, detail: `PostgreSQL, schema ${this.schema}` };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.notifications?.close();
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end();
  }

  // ---------------------------------------------------------------- internals

  private use(): Pool {
    if (this.pool !== undefined) return this.pool;
    if (this.closed) throw new Error(`PostgresTaskStore(${this.schema}) is closed`);
    throw new Error(`PostgresTaskStore(${this.schema}) is not open: call open() first`);
  }

  /** One statement on any pooled connection (its own transaction). */
  private async query<R extends QueryResultRow>(text: string, values: unknown[], name: string): Promise<{ rows: R[] }> {
    const pool = this.use();
    try {
      const result = await pool.query<R>({ name, text, values });
      this.lastOkMs = Date.now();
      return result;
    } catch (err) {
      this.failed(err);
      throw err;
    }
  }

  private async run<R extends QueryResultRow>(client: PoolClient, text: string, values: unknown[], name: string): Promise<{ rows: R[] }> {
    return client.query<R>({ name, text, values });
  }

  /**
   * BEGIN .. COMMIT on one connection; anything thrown rolls back (and a
   * broken connection is not reused). Given up after callTimeoutMs: the
   * connection is closed, so a commit whose COMMIT was sent has an unknown
   * outcome, which the caller handles (commits are repeatable).
   */
  private async transaction(begin: string, body: (client: PoolClient) => Promise<void>): Promise<void> {
    let client: PoolClient;
    try {
      client = await this.use().connect();
    } catch (err) {
      this.failed(err);
      throw err;
    }
    // While checked out, the pool does not listen for the connection's errors: without this, a reset between two statements would crash the process.
    const onError = (err: Error): void => this.failed(err);
    client.on('error', onError);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`PostgreSQL did not finish a commit within ${this.callTimeoutMs} ms (callTimeoutMs)`)), this.callTimeoutMs);
    });
    let broken: Error | undefined;
    try {
      await Promise.race([
        (async () => {
          await client.query(begin);
          await body(client);
          await client.query('COMMIT');
        })(),
        timedOut,
      ]);
      this.lastOkMs = Date.now();
    } catch (err) {
      broken = err instanceof Error ? err : new Error(String(err));
      this.failed(err);
      // A connection that timed out may be stuck mid-statement: it is closed, not rolled back and reused.
      if (!broken.message.includes('callTimeoutMs')) await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
      client.off('error', onError);
      client.release(broken);
    }
  }

  private failed(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (this.lastError === undefined || this.lastError.atMs < this.lastOkMs) log.warn('PostgreSQL call failed', { schema: this.schema, error: message });
    this.lastError = { atMs: Date.now(), message };
  }

  private emit(event: StoreEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        log.error('a store event listener threw', { error: err });
      }
    }
  }
}
