import type { CommitBatch, CommitOutcome } from '../core/commit-batch';
import type { TaskRecord } from '../core/task-fields';
import type { ErrorInfo } from '../errors';

/** A dispatcher process, as it registers in the store. */
export interface DispatcherEntry {
  /** This process's incarnation: `<dispatcherId>#<random>`; tasks it claims carry it as `owner`. */
  owner: string;
  /** The stable dispatcher id (--dispatcher-id); several incarnations share it over restarts. */
  dispatcherId: string;
  zone: string;
  /** host:port clients dial, for operators. */
  address: string;
}

/** What the store says after a heartbeat. */
export interface HeartbeatOutcome {
  /** Live dispatchers other than this one (heartbeat not expired). */
  peers: number;
  /** False when this dispatcher's entry had expired (others may have reaped its tasks) or was gone. */
  wasLive: boolean;
}

/** Tasks that need a decision because time passed (see core/sweep-rules.ts). */
export interface SweepCandidates {
  /** ASSIGNED or RUNNING, owned by a dispatcher whose heartbeat expired (or by none). */
  leaseExpired: TaskRecord[];
  /** PENDING past their schedule-to-start deadline. */
  startExpired: TaskRecord[];
}

export interface StoreCancelOutcome {
  /** The task after the cancel (unchanged when it was already terminal). */
  task: TaskRecord;
  cancelled: boolean;
  /** Who held the attempt that was cancelled ('' when none): that dispatcher must tell its worker. */
  previousOwner: string;
  previousAttempt: number;
}

/** Wake-ups one dispatcher's commits give the others (PostgreSQL LISTEN/NOTIFY). */
export type StoreEvent =
  /** Tasks of these queues became ready (or will at `atMs`): claim if there is room. */
  | { kind: 'ready'; queues: string[]; atMs: number }
  /** A task another dispatcher held was cancelled: tell the worker. */
  | { kind: 'cancelled'; owner: string; taskId: string; attempt: number }
  /** Wake-ups may have been missed (the channel reconnected): claim again and check what this dispatcher holds. */
  | { kind: 'resync' };

/** The store's own view of its health, for /readyz. */
export interface StoreHealth {
  ok: boolean;
  /** Why not, for operators. */
  detail: string;
}

/**
 * The one contract every durable backend implements; the dispatcher never
 * talks to a database directly. The same contract suite
 * (test/store/task-store.contract.ts) runs against every adapter.
 *
 * The store owns who holds a task: a claim sets the owner, the attempt's
 * session and the lease in one conditional write; every later change is
 * conditional on the version the engine read, so a dispatcher that lost a
 * task (reaped, cancelled elsewhere) gets a conflict instead of overwriting.
 *
 * The current time is a parameter (`nowMs`) wherever it matters, so the
 * contract can be tested without waiting for the clock.
 */
export interface ReadyDepth {
  queue: string;
  zone: string;
  count: number;
}

/** Latency rows (src/telemetry/latency-matrix.ts SlotRow) shared between dispatchers. */
export interface SharedLatencyRow {
  series: string;
  fromZone: string;
  toZone: string;
  slotMs: number;
  buckets: number[];
  sumMs: number;
}

export interface SharedLatency {
  /** Replaces `dispatcherId`'s rows of these slots. */
  write(dispatcherId: string, rows: readonly SharedLatencyRow[]): Promise<void>;
  /** Every other dispatcher's rows of slots from `sinceMs` on, by dispatcher id. */
  read(sinceMs: number, selfId: string): Promise<Map<string, SharedLatencyRow[]>>;
  /** Deletes rows of slots before `beforeMs`. */
  purge(beforeMs: number): Promise<void>;
}

export interface TaskStore {
  /** 'sqlite', 'postgres' or 'memory', for logs and /readyz. */
  readonly kind: string;
  /**
   * True when one process alone uses the store (SQLite under its data-dir
   * lock): every other dispatcher entry is a dead process, so `register`
   * expires them and their tasks can be reaped at once.
   */
  readonly exclusive: boolean;

  /** Creates or migrates the schema. Idempotent; concurrent opens by several processes are safe. */
  open(): Promise<void>;

  /**
   * Enters this dispatcher, live until `leaseExpiresMs`. Expires the entries
   * of earlier incarnations of the same dispatcher id (a restart: their tasks
   * are reaped at once), and with `exclusive` every other entry.
   */
  register(entry: DispatcherEntry, nowMs: number, leaseExpiresMs: number): Promise<void>;

  /** Keeps this dispatcher live until `leaseExpiresMs`. */
  heartbeat(owner: string, nowMs: number, leaseExpiresMs: number): Promise<HeartbeatOutcome>;

  /** Removes this dispatcher's entry (a clean stop, after its tasks were given back). */
  unregister(owner: string): Promise<void>;

  /**
   * One group commit: the idempotency keys and inserts, then the writes, all
   * in one atomic, durable transaction; then the claims. A new task whose
   * idempotency key another task holds (until that task's createdMs +
   * retention) is not inserted: it comes back in `duplicates`. When the
   * promise resolves, all of it survives a crash; when it rejects, none of
   * it may have been written, or all of it (the caller retries; writes
   * accept their own repetition, inserts of the same id are skipped).
   */
  commit(batch: CommitBatch): Promise<CommitOutcome>;

  /** Tasks that need a decision because time passed, at most `limit` of each kind; never those `owner` holds. */
  sweep(owner: string, nowMs: number, limit: number): Promise<SweepCandidates>;

  /** Every unfinished task `owner` holds (to reconcile after a commit whose outcome was unknown). */
  owned(owner: string): Promise<TaskRecord[]>;

  /**
   * Cancels a task whatever holds it (for a task this dispatcher's engine
   * does not hold): one conditional write. Undefined for an unknown task.
   */
  cancel(taskId: string, nowMs: number, error: ErrorInfo): Promise<StoreCancelOutcome | undefined>;

  get(taskId: string): Promise<TaskRecord | undefined>;

  /** The tasks among `ids` that exist, in any order. */
  getMany(ids: readonly string[]): Promise<TaskRecord[]>;

  /**
   * Deletes idempotency keys that expired before `nowMs`, and terminal tasks
   * last updated before `finishedBeforeMs`; at most `limit` of each. Returns
   * how many rows went.
   */
  purge(nowMs: number, finishedBeforeMs: number, limit: number): Promise<number>;

  /** Ready tasks (PENDING, ready by `nowMs`) by queue and zone (preferred, else accepted): for the queue-depth gauge. */
  readyDepth(nowMs: number): Promise<ReadyDepth[]>;

  /** PENDING tasks of `queue`, delayed ones included: for the access policy's queue caps. */
  pendingCount(queue: string): Promise<number>;

  /** Which of `keys` a task still holds at `nowMs` (within its idempotency retention): a submit with one is a duplicate. */
  heldKeys(keys: readonly string[], nowMs: number): Promise<Set<string>>;

  /** Where dispatchers sharing this store share their latency rows (the heatmap page); absent for a store one process uses. */
  readonly sharedLatency?: SharedLatency;

  /** Subscribes to other dispatchers' wake-ups; returns the unsubscribe. Stores used by one process never call it. */
  subscribe(listener: (event: StoreEvent) => void): () => void;

  health(): StoreHealth;

  close(): Promise<void>;
}
