import type { TaskRecord } from '../core/task-fields';
import { isTerminal } from '../core/task-state';

export type WatchListener = (record: TaskRecord) => void;

/** WatchTask subscribers by task id; notified with every durable change. A listener that throws is reported and never keeps the others from hearing. */
export class WatchRegistry {
  private readonly listeners = new Map<string, Set<WatchListener>>();

  constructor(private readonly onError: (error: unknown) => void) {}

  add(taskId: string, listener: WatchListener): () => void {
    let set = this.listeners.get(taskId);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(taskId, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(taskId);
      if (current === undefined) return;
      current.delete(listener);
      if (current.size === 0) this.listeners.delete(taskId);
    };
  }

  notify(records: readonly TaskRecord[]): void {
    if (this.listeners.size === 0) return;
    for (const record of records) {
      const set = this.listeners.get(record.id);
      if (set === undefined) continue;
      for (const listener of [...set]) {
        try {
          listener(record);
        } catch (err) {
          this.onError(err);
        }
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}

/**
 * One WatchTask subscriber's view: each newer state once, and always the
 * terminal state (whatever its version, however the task got there), after
 * which it calls `onEnd` once and takes nothing more.
 */
export function untilTerminal(listener: WatchListener, onEnd: () => void): WatchListener {
  let lastVersion = -1;
  let ended = false;
  const deliver = (record: TaskRecord): void => {
    if (ended) return;
    const terminal = isTerminal(record.state);
    if (!terminal && record.version <= lastVersion) return;
    lastVersion = record.version;
    if (terminal) ended = true;
    listener(record);
    if (terminal) onEnd();
  };
  return deliver;
}
