import type { TaskRecord } from '../core/task';

/**
 * The one contract every durable backend implements. The dispatcher never
 * talks to a database directly. The same contract suite
 * (test/store/task-store.contract.ts) runs against every adapter.
 *
 * The current time is a parameter (`nowMs`) wherever it matters, so the
 * contract can be tested without waiting for the clock.
 */
export interface TaskStore {
  /** Creates or migrates the schema. Idempotent. */
  open(): Promise<void>;

  /**
   * Writes every record (insert or full replace by id) in one atomic, durable
   * transaction, and maps the idempotency key of each record that has one to
   * its task id until `createdMs + idempotencyRetentionMs` (a key already
   * mapped is re-pointed: the caller checked it had expired). When the promise
   * resolves, all of it survives a crash; when it rejects, none of it is written.
   */
  commit(records: readonly TaskRecord[], idempotencyRetentionMs: number): Promise<void>;

  get(taskId: string): Promise<TaskRecord | undefined>;

  /** The task a still-retained idempotency key points to. */
  findByIdempotencyKey(key: string, nowMs: number): Promise<TaskRecord | undefined>;

  /** Every task not in a terminal state, for recovery after a restart. */
  loadUnfinished(): Promise<TaskRecord[]>;

  /**
   * Deletes idempotency keys that expired before `nowMs`, and terminal tasks
   * last updated before `finishedBeforeMs`; at most `limit` of each. Returns
   * how many rows went.
   */
  purge(nowMs: number, finishedBeforeMs: number, limit: number): Promise<number>;

  close(): Promise<void>;
}
