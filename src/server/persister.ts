import type { Engine } from '../core/engine';
import type { TaskRecord } from '../core/task';
import type { TaskStore } from '../store/task-store';

export type AfterCommit = (error?: Error) => void;

/** The four members of the Engine the persister uses (a test builds them from an object literal). */
export type PersisterEngine = Pick<Engine, 'takeDirty' | 'restoreDirty' | 'committed' | 'hasDirty'>;

export interface PersisterHooks {
  /** Runs right before each commit, so work done in this turn joins it (dispatch, effects). */
  beforeCommit(): void;
  /** Every record that just became durable (for watchers). */
  committed(records: TaskRecord[]): void;
  /** A failed commit, or a post-commit step that threw. Must not throw. */
  onError(error: Error): void;
}

/**
 * Group commit. Every change the engine makes in one event-loop turn goes
 * into one store transaction (one fsync), and everything waiting on it — a
 * Submit's answer, update acks, assignments — happens only after it.
 *
 * Invariants: at most one commit runs at a time; a callback registered while
 * one runs waits for the next one, which also holds its changes. Every
 * callback is called exactly once, with the outcome of the commit that held
 * its changes: a callback (or watcher) that throws is reported to `onError`
 * and changes neither that outcome nor what the other callbacks hear.
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
  /** Post-commit steps (callbacks, watchers) that threw; each was reported to onError. */
  callbackErrors = 0;

  constructor(
    private readonly engine: PersisterEngine,
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
    const stopped = new Error('dispatcher stopped before the change was durable');
    for (const fn of waiting) this.isolated('an after-commit callback', () => fn(stopped));
  }

  private async run(): Promise<void> {
    this.scheduled = false;
    this.running = true;
    let records: TaskRecord[] = [];
    let waiting: AfterCommit[] = [];
    let failure: Error | undefined;
    // Only the commit itself is inside this try: what runs after it must not
    // turn a durable commit into a reported failure.
    try {
      this.hooks.beforeCommit();
      records = this.engine.takeDirty();
      waiting = this.waiting;
      this.waiting = [];
      if (records.length > 0) await this.store.commit(records, this.idempotencyRetentionMs());
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
    }
    this.running = false;
    if (failure === undefined) this.succeeded(records, waiting);
    else this.failed(failure, records, waiting);
    if (this.waiting.length > 0 || this.engine.hasDirty) this.schedule();
  }

  /** The commit is durable: every callback hears so exactly once, whatever the others do. */
  private succeeded(records: TaskRecord[], waiting: AfterCommit[]): void {
    this.retryDelayMs = 0;
    if (records.length > 0) {
      this.commits += 1;
      this.recordsCommitted += records.length;
      this.isolated('the engine\'s post-commit bookkeeping', () => this.engine.committed(records));
      this.isolated('a watcher', () => this.hooks.committed(records));
    }
    for (const fn of waiting) this.isolated('an after-commit callback', () => fn());
  }

  /** Nothing was written: the records go back to dirty, the callbacks hear the error, a retry is scheduled. */
  private failed(error: Error, records: TaskRecord[], waiting: AfterCommit[]): void {
    this.engine.restoreDirty(records);
    this.hooks.onError(error);
    for (const fn of waiting) this.isolated('an after-commit callback', () => fn(error));
    this.retryDelayMs = Math.min(5_000, Math.max(50, this.retryDelayMs * 2));
    if (!this.closed) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.schedule();
      }, this.retryDelayMs);
    }
  }

  /** Runs one post-commit step; a throw goes to onError and stops nothing else. */
  private isolated(what: string, step: () => void): void {
    try {
      step();
    } catch (err) {
      this.callbackErrors += 1;
      const message = err instanceof Error ? err.message : String(err);
      this.hooks.onError(new Error(`${what} threw after the commit's outcome was decided (the outcome stands): ${message}`, { cause: err }));
    }
  }
}
