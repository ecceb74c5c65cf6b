import type { TaskRecord } from '../core/task-fields';
import { isTerminal } from '../core/task-state';

export interface RemoteWatchDeps {
  /** Reads the tasks from the store. */
  read(ids: readonly string[]): Promise<TaskRecord[]>;
  /** Whether the task is in this dispatcher's engine (its changes reach the watchers with each commit). */
  local(id: string): boolean;
  deliver(records: TaskRecord[]): void;
  onError(error: unknown): void;
  pollMs: number;
}

/**
 * Watched tasks whose changes this dispatcher does not make: waiting in the
 * store, or held by another dispatcher. They are read again every `pollMs`
 * while any is watched, and each newer version is delivered to the watchers.
 * The timer runs only while there is something to read.
 */
export class RemoteWatches {
  /** Watched id -> how many watchers, and the last version delivered. */
  private readonly watched = new Map<string, { count: number; version: number }>();
  private timer: NodeJS.Timeout | undefined;
  private reading = false;
  private closed = false;

  constructor(private readonly deps: RemoteWatchDeps) {}

  /** Watches a task; returns the function that stops this watch. */
  add(taskId: string): () => void {
    const entry = this.watched.get(taskId);
    if (entry === undefined) this.watched.set(taskId, { count: 1, version: -1 });
    else entry.count += 1;
    this.arm();
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      const current = this.watched.get(taskId);
      if (current === undefined) return;
      current.count -= 1;
      if (current.count === 0) this.watched.delete(taskId);
    };
  }

  /** Records committed here reached the watchers already: remember their versions. */
  committedHere(records: readonly TaskRecord[]): void {
    if (this.watched.size === 0) return;
    for (const record of records) {
      const entry = this.watched.get(record.id);
      if (entry !== undefined && record.version > entry.version) entry.version = record.version;
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer !== undefined || this.closed || this.watched.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll();
    }, this.deps.pollMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    if (this.reading) return;
    const ids = [...this.watched.keys()].filter((id) => !this.deps.local(id));
    if (ids.length > 0) {
      this.reading = true;
      try {
        const records = await this.deps.read(ids);
        const changed: TaskRecord[] = [];
        for (const record of records) {
          const entry = this.watched.get(record.id);
          if (entry === undefined || (record.version <= entry.version && !isTerminal(record.state))) continue;
          entry.version = Math.max(entry.version, record.version);
          changed.push(record);
        }
        if (changed.length > 0) this.deps.deliver(changed);
      } catch (err) {
        this.deps.onError(err);
      } finally {
        this.reading = false;
      }
    }
    this.arm();
  }
}
