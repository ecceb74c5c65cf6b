import type { Engine } from '../core/engine';
import type { TaskRecord } from '../core/task-fields';
import type { TaskStore } from '../store/task-store';

export type AfterCommit = (error?: Error) => void;

/** The members of the Engine the persister uses (a test builds them from an object literal). */
export type PersisterEngine = Pick<Engine, 'beginCommit' | 'commitSucceeded' | 'commitFailed' | 'reconcile' | 'hasWork'>;

export interface PersisterHooks {
  /** Runs right before each commit, so work done in this turn joins it (the effects to deliver after it). */
  beforeCommit(): void;
  /**
   * The store answered a commit, before the engine hears of it: what the
   * engine did while the commit was in flight is not part of it (a task
   * submitted meanwhile is not durable yet), so its effects wait for the next one.
   */
  answered?(): void;
  /** Every record that just became durable (for watchers). */
  committed(records: TaskRecord[]): void;
  /** A commit succeeded and its callbacks ran: deliver the effects that waited on it. */
  delivered(): void;
  /** A commit failed and the engine dropped these tasks (new ones, ones taken in from a sweep). */
  dropped?(taskIds: ReadonlySet<string>): void;
  /** A failed commit, or a post-commit step that threw. Must not throw. */
  onError(error: Error): void;
  /** Every store call goes through this (the store's circuit breaker). */
  call<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * Group commit. Every change the engine makes in one event-loop turn goes
 * into one store transaction (one fsync), with the claims for the free slots
 * of that moment, and everything waiting on it (a Submit's answer, update
 * acks, assignments) happens only after it.
 *
 * Invariants: at most one commit runs at a time; a callback registered while
 * one runs waits for the next one, which also holds its changes. Every
 * callback is called exactly once, with the outcome of the commit that held
 * its changes: a callback (or watcher) that throws is reported to `onError`
 * and changes neither that outcome nor what the other callbacks hear. After
 * a failed commit, whose outcome the store may not know, the next run first
 * reconciles what the store says this dispatcher holds.
 */
export class Persister {
  private waiting: AfterCommit[] = [];
  private scheduled = false;
  private running = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 0;
  private closed = false;
  private reconcileDue = false;
  commits = 0;
  recordsCommitted = 0;
  failures = 0;
  /** Post-commit steps (callbacks, watchers) that threw; each was reported to onError. */
  callbackErrors = 0;

  constructor(
    private readonly engine: PersisterEngine,
    private readonly store: Pick<TaskStore, 'commit' | 'owned'>,
    private readonly owner: string,
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

  /** The next run reconciles first (a heartbeat found the lease had expired). */
  reconcileSoon(): void {
    this.reconcileDue = true;
    this.schedule();
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
    let durable: TaskRecord[] = [];
    let waiting: AfterCommit[] = [];
    let failure: Error | undefined;
    // Only the store calls are inside this try: what runs after them must not
    // turn a durable commit into a reported failure.
    try {
      if (this.reconcileDue) {
        const owned = await this.hooks.call(() => this.store.owned(this.owner));
        this.engine.reconcile(owned);
        this.reconcileDue = false;
      }
      this.hooks.beforeCommit();
      waiting = this.waiting;
      this.waiting = [];
      const batch = this.engine.beginCommit();
      if (batch !== undefined) {
        let outcome;
        try {
          outcome = await this.hooks.call(() => this.store.commit(batch));
        } catch (err) {
          const dropped = this.engine.commitFailed();
          if (dropped.size > 0) this.hooks.dropped?.(dropped);
          this.reconcileDue = true;
          throw err;
        }
        this.hooks.answered?.();
        durable = this.engine.commitSucceeded(outcome);
      }
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
      // Callbacks registered during a failed reconcile wait for the next run.
      if (waiting.length === 0) {
        waiting = this.waiting;
        this.waiting = [];
      }
    }
    this.running = false;
    if (failure === undefined) this.succeeded(durable, waiting);
    else this.failed(failure, waiting);
    if (this.waiting.length > 0 || this.engine.hasWork) this.schedule();
  }

  /** The commit is durable: every callback hears so exactly once, whatever the others do. */
  private succeeded(records: TaskRecord[], waiting: AfterCommit[]): void {
    this.retryDelayMs = 0;
    if (records.length > 0) {
      this.commits += 1;
      this.recordsCommitted += records.length;
      this.isolated('a watcher', () => this.hooks.committed(records));
    }
    // Answers first (acks, submit results), then the effects: an effect may end a stream the answers go on.
    for (const fn of waiting) this.isolated('an after-commit callback', () => fn());
    this.isolated('delivering effects', () => this.hooks.delivered());
  }

  /** Nothing may have been written: the callbacks hear the error, a retry is scheduled. */
  private failed(error: Error, waiting: AfterCommit[]): void {
    this.failures += 1;
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
