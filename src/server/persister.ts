import type { Engine } from '../core/engine';
import type { TaskRecord } from '../core/task';
import type { TaskStore } from '../store/task-store';

export type AfterCommit = (error?: Error) => void;

export interface PersisterHooks {
  /** Runs right before each commit, so work done in this turn joins it (dispatch, effects). */
  beforeCommit(): void;
  /** Every record that just became durable (for watchers). */
  committed(records: TaskRecord[]): void;
  onError(error: Error): void;
}

/**
 * Group commit. Every change the engine makes in one event-loop turn goes
 * into one store transaction (one fsync), and everything waiting on it — a
 * Submit's answer, update acks, assignments — happens only after it.
 *
 * Invariant: at most one commit runs at a time; a callback registered while
 * one runs waits for the next one, which also holds its changes.
 */
export class Persister {
  private waiting: AfterCommit[] = [];
  private scheduled = false;
  private running = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 0;
  private closed = false;
  commits = 0;
  recordsCommitted = 0;

  constructor(
    private readonly engine: Engine,
    private readonly store: TaskStore,
    private readonly idempotencyRetentionMs: () => number,
    private readonly hooks: PersisterHooks,
  ) {}

  /** Calls `fn` once everything changed so far is durable (or with the error if the commit failed). */
  afterCommit(fn: AfterCommit): void {
    this.waiting.push(fn);
    this.schedule();
  }

  /** Resolves once everything changed so far is durable. */
  barrier(): Promise<void> {
    return new Promise((resolve, reject) => this.afterCommit((error) => (error ? reject(error) : resolve())));
  }

  /** Requests a commit without waiting for it (timer-driven changes). */
  schedule(): void {
    if (this.scheduled || this.running || this.retryTimer !== undefined || this.closed) return;
    this.scheduled = true;
    setImmediate(() => void this.run());
  }

  /** Stops retrying; pending callbacks get an error. Call after a final `barrier()`. */
  close(): void {
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const waiting = this.waiting;
    this.waiting = [];
    for (const fn of waiting) fn(new Error('dispatcher stopped before the change was durable'));
  }

  private async run(): Promise<void> {
    this.scheduled = false;
    this.running = true;
    let records: TaskRecord[] = [];
    let waiting: AfterCommit[] = [];
    try {
      this.hooks.beforeCommit();
      records = this.engine.takeDirty();
      waiting = this.waiting;
      this.waiting = [];
      if (records.length > 0) {
        await this.store.commit(records, this.idempotencyRetentionMs());
        this.commits += 1;
        this.recordsCommitted += records.length;
        this.engine.committed(records);
        this.hooks.committed(records);
      }
      this.retryDelayMs = 0;
      this.running = false;
      for (const fn of waiting) fn();
    } catch (err) {
      this.running = false;
      const error = err instanceof Error ? err : new Error(String(err));
      this.engine.restoreDirty(records);
      this.hooks.onError(error);
      for (const fn of waiting) fn(error);
      this.retryDelayMs = Math.min(5_000, Math.max(50, this.retryDelayMs * 2));
      if (!this.closed) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.schedule();
        }, this.retryDelayMs);
      }
    }
    if (this.waiting.length > 0 || this.engine.hasDirty) this.schedule();
  }
}
