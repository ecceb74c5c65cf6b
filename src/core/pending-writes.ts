import type { CommitBatch, StateWrite } from './commit-batch';
import type { TaskRecord } from './task-fields';

type Requeue = StateWrite['requeue'];

/** When one task is changed twice before its write, the stronger requeue wins. */
const REQUEUE_RANK: Record<Requeue, number> = { none: 0, keep: 1, back: 2 };

/** The commit in flight: what was handed to the store and how to apply its outcome. */
export interface InFlight {
  batch: CommitBatch;
  /** Every insert and write of the batch, by task id. */
  snapshots: Map<string, TaskRecord>;
  inserted: Set<string>;
  requeues: Map<string, Requeue>;
  /** Tasks taken in from a sweep (another dispatcher's, or waiting too long): forgotten if the commit fails. */
  swept: Set<string>;
}

/** The next commit's inserts and writes. */
export interface PendingBatch {
  inserts: TaskRecord[];
  writes: StateWrite[];
  snapshots: Map<string, TaskRecord>;
  inserted: Set<string>;
  requeues: Map<string, Requeue>;
  swept: Set<string>;
}

/**
 * What the engine changed that the store does not hold yet: for each task it
 * holds, the version the store holds (absent until the task is inserted),
 * which tasks changed since their last write, and the commit in flight.
 * Pure bookkeeping for engine.ts.
 */
export class PendingWrites {
  /** The version the store holds of a task; absent while it is not inserted yet. */
  private readonly storedVersion = new Map<string, number>();
  /** Tasks changed since their last write, and how a write that makes one PENDING requeues it. */
  private readonly dirty = new Map<string, Requeue>();
  /** Tasks taken in from a sweep whose writes are not durable yet. */
  private readonly sweptIds = new Set<string>();
  private flight: InFlight | undefined;

  get hasChanges(): boolean {
    return this.dirty.size > 0;
  }

  get inFlight(): InFlight | undefined {
    return this.flight;
  }

  markDirty(id: string, requeue: Requeue): void {
    const previous = this.dirty.get(id);
    this.dirty.set(id, previous !== undefined && REQUEUE_RANK[previous] > REQUEUE_RANK[requeue] ? previous : requeue);
  }

  isDirty(id: string): boolean {
    return this.dirty.has(id);
  }

  /** The store holds this version of the task (it was read from the store, or a write of it became durable). */
  stored(id: string, version: number): void {
    this.storedVersion.set(id, version);
  }

  isStored(id: string): boolean {
    return this.storedVersion.has(id);
  }

  /** A task taken in from a sweep: dropped, not written again, if its commit fails. */
  swept(id: string, version: number): void {
    this.storedVersion.set(id, version);
    this.sweptIds.add(id);
  }

  /** The task left the engine: nothing of it is written any more. */
  forget(id: string): void {
    this.storedVersion.delete(id);
    this.dirty.delete(id);
  }

  /** Every changed task, as an insert (never stored) or a write conditional on the stored version. */
  take(tasks: ReadonlyMap<string, TaskRecord>): PendingBatch {
    if (this.flight !== undefined) throw new Error('a commit is already in flight');
    const inserts: TaskRecord[] = [];
    const writes: StateWrite[] = [];
    const snapshots = new Map<string, TaskRecord>();
    const inserted = new Set<string>();
    const requeues = new Map<string, Requeue>();
    for (const [id, requeue] of this.dirty) {
      const task = tasks.get(id);
      if (task === undefined) continue;
      // A shallow copy: payloads and results are never changed in place.
      const snapshot = { ...task };
      snapshots.set(id, snapshot);
      const stored = this.storedVersion.get(id);
      if (stored === undefined) {
        inserts.push(snapshot);
        inserted.add(id);
      } else {
        writes.push({ record: snapshot, expectVersion: stored, requeue });
        requeues.set(id, requeue);
      }
    }
    this.dirty.clear();
    const swept = new Set<string>();
    for (const id of this.sweptIds) if (snapshots.has(id)) swept.add(id);
    this.sweptIds.clear();
    return { inserts, writes, snapshots, inserted, requeues, swept };
  }

  /** The batch went to the store. */
  begin(flight: InFlight): void {
    this.flight = flight;
  }

  /** The store answered (or failed): the flight ends. */
  end(): InFlight {
    const flight = this.flight;
    if (flight === undefined) throw new Error('no commit in flight');
    this.flight = undefined;
    return flight;
  }
}
