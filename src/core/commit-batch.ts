import type { TaskRecord } from './task-fields';

/**
 * What the engine hands the store in one group commit, and what comes back.
 * The store applies a batch atomically and durably: inserts and writes all
 * land or none does; then it claims for the batch's claim groups.
 */

/**
 * A change of a task's state columns (TASK_FIELDS group `state`); the
 * definition columns are never written again. Conditional: it applies only
 * while the store holds `expectVersion`, the version the engine read or last
 * wrote. It also counts as applied when the store already holds exactly this
 * write (`holdsSameWrite`): a retry of a commit whose outcome was unknown.
 */
export interface StateWrite {
  record: TaskRecord;
  expectVersion: number;
  /**
   * For a write that makes the task PENDING: `back` puts it behind the tasks
   * of its priority already waiting (a retry); `keep` keeps its place (a
   * claim given back before any worker saw it).
   */
  requeue: 'back' | 'keep' | 'none';
}

/**
 * Whether the row `current` already holds the write `next`: same version,
 * state, attempt and owner, and the same error and result. The error and
 * result matter: another writer (the dispatcher that reaped the task, say)
 * can reach the same version, state and attempt with its own outcome, and a
 * late writer must then hear of the conflict, not be told it applied.
 */
export function holdsSameWrite(current: TaskRecord, next: TaskRecord): boolean {
  return (
    current.version === next.version &&
    current.state === next.state &&
    current.attempt === next.attempt &&
    current.owner === next.owner &&
    sameError(current.error, next.error) &&
    sameBytes(current.result, next.result)
  );
}

function sameError(a: TaskRecord['error'], b: TaskRecord['error']): boolean {
  if (a === null || b === null) return a === b;
  return a.code === b.code && a.reason === b.reason && a.message === b.message && a.retryable === b.retryable;
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** One slot of a session with free capacity, offered to a claim. */
export interface ClaimSlot {
  sessionId: string;
  workerId: string;
}

/**
 * Claim up to `slots.length` ready tasks of `queue` for sessions of `zone`,
 * binding the i-th task claimed to `slots[i]`. Order: first the tasks this
 * zone may take at once (claim-rules.ts), by priority then FIFO; then, if
 * slots remain, the other zones' tasks whose spillover delay has passed.
 */
export interface ClaimGroup {
  queue: string;
  zone: string;
  slots: ClaimSlot[];
}

export interface CommitBatch {
  nowMs: number;
  /** This dispatcher process (its incarnation id). */
  owner: string;
  /** Its zone: recorded on claimed tasks, and a task accepted in this zone is taken at once. */
  dispatcherZone: string;
  /** Recorded on claimed tasks: until then the claim holds without the owner's heartbeat. */
  leaseExpiresMs: number;
  spilloverDelayMs: number;
  idempotencyRetentionMs: number;
  /** New tasks, whole records: PENDING and unowned, or ASSIGNED to `owner` already. */
  inserts: TaskRecord[];
  writes: StateWrite[];
  claims: ClaimGroup[];
}

export interface ClaimedTask {
  task: TaskRecord;
  /** Index into the group's slots. */
  slot: number;
}

export interface CommitOutcome {
  /** New tasks not inserted because another task holds their idempotency key: new id -> that task's id. */
  duplicates: Map<string, string>;
  /**
   * Writes not made because the task changed since it was read (another
   * dispatcher reaped or cancelled it): id -> what the store holds now
   * (undefined when the task is gone).
   */
  conflicts: Map<string, TaskRecord | undefined>;
  /** Per claim group, in order: the tasks claimed, now ASSIGNED to the batch's owner. */
  claimed: ClaimedTask[][];
  /**
   * Per claim group that got fewer tasks than slots: the earliest instant a
   * task of its queue may become claimable for it (a delayed task's time, or
   * another zone's task's spillover), undefined when none is known.
   */
  nextClaimAtMs: (number | undefined)[];
}

export function emptyOutcome(groups: number): CommitOutcome {
  return {
    duplicates: new Map(),
    conflicts: new Map(),
    claimed: Array.from({ length: groups }, () => []),
    nextClaimAtMs: Array.from({ length: groups }, () => undefined),
  };
}
