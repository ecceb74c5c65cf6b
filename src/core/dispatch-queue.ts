import { MinHeap } from './min-heap';
import type { SessionState } from './session';
import type { TaskRecord } from './task';

export interface ReadyEntry {
  task: TaskRecord;
  /** The task's version when it was queued; a different version means the entry is stale. */
  version: number;
  /** When the task became ready; its zone spillover delay counts from here. */
  readyAtMs: number;
  /** Waiting for a session of its preferred zone (in `held`, not in `ready`). */
  held: boolean;
  /** Bumped at every hold, so a spill deadline of an earlier hold is ignored. */
  holdGeneration: number;
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
  /**
   * Tasks that prefer a zone and wait (up to the zone spillover delay) for a
   * session of that zone, by zone. Entries leave lazily like ready ones.
   */
  private readonly held = new Map<string, MinHeap<ReadyEntry>>();
  /** Insertion order is the round-robin order: a served session moves to the end. */
  private readonly ring = new Map<string, SessionState>();

  constructor(readonly name: string) {}

  pushReady(task: TaskRecord, nowMs: number): void {
    this.ready.push({ task, version: task.version, readyAtMs: nowMs, held: false, holdGeneration: 0 });
  }

  /** Puts a held entry back among the ready ones (its spill time came, or the delay changed). */
  release(entry: ReadyEntry): void {
    if (!entry.held) return;
    entry.held = false;
    this.ready.push(entry);
  }

  /** Releases every held entry (the spillover delay changed: each is judged again). */
  releaseAll(): void {
    for (const heap of this.held.values()) {
      for (let entry = heap.pop(); entry !== undefined; entry = heap.pop()) this.release(entry);
    }
    this.held.clear();
  }

  offer(session: SessionState): void {
    if (!this.ring.has(session.id)) this.ring.set(session.id, session);
  }

  forget(sessionId: string): void {
    this.ring.delete(sessionId);
  }

  /** Ready and held entries (including stale ones not yet dropped). */
  get readyCount(): number {
    let n = this.ready.size;
    for (const heap of this.held.values()) n += heap.size;
    return n;
  }

  /** Next dispatchable entry, dropping stale ones. */
  peekReady(): ReadyEntry | undefined {
    return peekLive(this.ready, false);
  }

  popReady(): void {
    this.ready.pop();
  }

  /** Moves the top ready entry to the zone's held heap (with a new hold generation) and returns it. */
  holdTop(zone: string): ReadyEntry | undefined {
    const entry = this.ready.pop();
    if (entry === undefined) return undefined;
    entry.held = true;
    entry.holdGeneration += 1;
    let heap = this.held.get(zone);
    if (heap === undefined) {
      heap = new MinHeap<ReadyEntry>(readyBefore);
      this.held.set(zone, heap);
    }
    heap.push(entry);
    return entry;
  }

  /** Zones that have held tasks. */
  heldZones(): IterableIterator<string> {
    return this.held.keys();
  }

  /** The next held task of `zone`, dropping stale entries (and the zone once empty). */
  peekHeld(zone: string): ReadyEntry | undefined {
    const heap = this.held.get(zone);
    if (heap === undefined) return undefined;
    const entry = peekLive(heap, true);
    if (entry === undefined) this.held.delete(zone);
    return entry;
  }

  popHeld(zone: string): void {
    const entry = this.held.get(zone)?.pop();
    if (entry !== undefined) entry.held = false;
  }

  /**
   * The session to serve next: the first in round-robin order with credit,
   * preferring `zone` when one there has credit (with `onlyZone`, a session
   * of `zone` or none). Sessions without credit are dropped from the ring;
   * they are offered again when a slot frees.
   */
  pickSession(zone: string, onlyZone = false): SessionState | undefined {
    let first: SessionState | undefined;
    for (const [id, session] of this.ring) {
      if (session.credit <= 0) {
        this.ring.delete(id);
        continue;
      }
      if (zone === '' || session.zone === zone) return session;
      if (!onlyZone) first ??= session;
    }
    return first;
  }

  /** Moves a just-served session to the end of the ring (or out of it when full). */
  served(session: SessionState): void {
    this.ring.delete(session.id);
    if (session.credit > 0) this.ring.set(session.id, session);
  }
}

/** The top entry of `heap` that is still current (PENDING, same version, in the expected place). */
function peekLive(heap: MinHeap<ReadyEntry>, held: boolean): ReadyEntry | undefined {
  for (;;) {
    const top = heap.peek();
    if (top === undefined) return undefined;
    if (top.held === held && top.task.state === 'PENDING' && top.task.version === top.version) return top;
    heap.pop();
  }
}
