import { MinHeap } from './min-heap';
import type { SessionState } from './session';
import type { TaskRecord } from './task';

interface ReadyEntry {
  task: TaskRecord;
  /** The task's version when it was queued; a different version means the entry is stale. */
  version: number;
}

function readyBefore(a: ReadyEntry, b: ReadyEntry): boolean {
  if (a.task.priority !== b.task.priority) return a.task.priority > b.task.priority;
  return a.task.seq < b.task.seq;
}

/**
 * The ready tasks of one queue (highest priority first, FIFO within a
 * priority) and the sessions serving it that have free slots, in
 * round-robin order. Entries are removed lazily, so every operation is
 * O(log n) in the queue length and never scans it.
 */
export class DispatchQueue {
  private readonly ready = new MinHeap<ReadyEntry>(readyBefore);
  /** Insertion order is the round-robin order: a served session moves to the end. */
  private readonly ring = new Map<string, SessionState>();

  constructor(readonly name: string) {}

  pushReady(task: TaskRecord): void {
    this.ready.push({ task, version: task.version });
  }

  offer(session: SessionState): void {
    if (!this.ring.has(session.id)) this.ring.set(session.id, session);
  }

  forget(sessionId: string): void {
    this.ring.delete(sessionId);
  }

  get readyCount(): number {
    return this.ready.size;
  }

  /** Next dispatchable task, dropping stale entries. */
  peekTask(): TaskRecord | undefined {
    for (;;) {
      const top = this.ready.peek();
      if (top === undefined) return undefined;
      if (top.task.state === 'PENDING' && top.task.version === top.version) return top.task;
      this.ready.pop();
    }
  }

  popTask(): void {
    this.ready.pop();
  }

  /**
   * The session to serve next: the first in round-robin order with credit,
   * preferring `zone` when one there has credit. Sessions without credit are
   * dropped from the ring; they are offered again when a slot frees.
   */
  pickSession(zone: string): SessionState | undefined {
    let first: SessionState | undefined;
    for (const [id, session] of this.ring) {
      if (session.credit <= 0) {
        this.ring.delete(id);
        continue;
      }
      if (zone === '' || session.zone === zone) return session;
      first ??= session;
    }
    return first;
  }

  /** Moves a just-served session to the end of the ring (or out of it when full). */
  served(session: SessionState): void {
    this.ring.delete(session.id);
    if (session.credit > 0) this.ring.set(session.id, session);
  }
}
