import { claimableAtMs, claimInStore, claimPhase } from '../../src/core/claim-rules';
import { cancelInStore } from '../../src/core/store-cancel';
import { emptyOutcome, holdsSameWrite, type CommitBatch, type CommitOutcome, type StateWrite } from '../../src/core/commit-batch';
import { copyRecord, STATE_FIELDS, type TaskRecord } from '../../src/core/task-fields';
import { isTerminal } from '../../src/core/task-state';
import type { ErrorInfo } from '../../src/errors';
import type { DispatcherEntry, HeartbeatOutcome, ReadyDepth, StoreCancelOutcome, StoreEvent, StoreHealth, SweepCandidates, TaskStore } from '../../src/store/task-store';

interface KeyEntry {
  taskId: string;
  expiresMs: number;
}

interface Entry extends DispatcherEntry {
  leaseExpiresMs: number;
}

/**
 * The TaskStore contract in memory, synchronously: what the core harness
 * (test/support/core-harness.ts) commits to, and what MemoryTaskStore wraps.
 * It passes the same contract suite as the durable adapters. Records are
 * copied in and out, so neither side can alias the other's.
 */
export class MemoryStoreCore {
  private readonly tasks = new Map<string, TaskRecord>();
  /** FIFO position among PENDING tasks (the SQL stores' `seq` column). */
  private readonly seqs = new Map<string, number>();
  private readonly keys = new Map<string, KeyEntry>();
  private readonly dispatchers = new Map<string, Entry>();
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  private nextSeq = 1;
  commits = 0;

  constructor(readonly exclusive = true) {}

  register(entry: DispatcherEntry, _nowMs: number, leaseExpiresMs: number): void {
    for (const other of this.dispatchers.values()) {
      if (other.dispatcherId === entry.dispatcherId || this.exclusive) other.leaseExpiresMs = 0;
    }
    this.dispatchers.set(entry.owner, { ...entry, leaseExpiresMs });
  }

  heartbeat(owner: string, nowMs: number, leaseExpiresMs: number): HeartbeatOutcome {
    const entry = this.dispatchers.get(owner);
    const wasLive = entry !== undefined && entry.leaseExpiresMs >= nowMs;
    if (entry !== undefined) entry.leaseExpiresMs = leaseExpiresMs;
    let peers = 0;
    for (const other of this.dispatchers.values()) if (other.owner !== owner && other.leaseExpiresMs >= nowMs) peers += 1;
    return { peers, wasLive };
  }

  unregister(owner: string): void {
    this.dispatchers.delete(owner);
  }

  commit(batch: CommitBatch): CommitOutcome {
    // Copy everything first: a record that cannot be read fails the commit before anything is written.
    const inserts = batch.inserts.map(copyRecord);
    const writes = batch.writes.map((w) => ({ ...w, record: copyRecord(w.record) }));
    const outcome = emptyOutcome(batch.claims.length);
    const readyQueues = new Map<string, number>();
    const noteReady = (task: TaskRecord): void => {
      if (task.state === 'PENDING') readyQueues.set(task.queue, Math.min(readyQueues.get(task.queue) ?? Infinity, task.readyAtMs));
    };
    for (const record of inserts) {
      if (this.tasks.has(record.id)) continue; // a retry of an insert that landed
      if (record.idempotencyKey !== '') {
        const held = this.keys.get(record.idempotencyKey);
        if (held !== undefined && held.expiresMs > batch.nowMs && held.taskId !== record.id) {
          outcome.duplicates.set(record.id, held.taskId);
          continue;
        }
        this.keys.set(record.idempotencyKey, { taskId: record.id, expiresMs: record.createdMs + batch.idempotencyRetentionMs });
      }
      this.tasks.set(record.id, record);
      this.seqs.set(record.id, this.nextSeq++);
      noteReady(record);
    }
    for (const write of writes) {
      const conflict = this.write(write);
      if (conflict !== null) outcome.conflicts.set(write.record.id, conflict);
      else noteReady(write.record);
    }
    // Every group's at-once tasks first, then (for slots still free) the spilled ones: a group's
    // spill never takes a task that a later group of the same batch takes at once.
    for (const phase of [1, 2] as const) {
      batch.claims.forEach((group, g) => {
        const claimed = outcome.claimed[g]!;
        const free = group.slots.length - claimed.length;
        if (free <= 0) return;
        const candidates = [...this.tasks.values()]
          .filter((task) => task.queue === group.queue && claimPhase(task, group.zone, batch.dispatcherZone, batch.nowMs, batch.spilloverDelayMs) === phase)
          .sort((a, b) => b.priority - a.priority || this.seqs.get(a.id)! - this.seqs.get(b.id)!);
        for (const task of candidates.slice(0, free)) {
          const slot = claimed.length;
          const s = group.slots[slot]!;
          claimInStore(task, batch, { sessionId: s.sessionId, workerId: s.workerId, zone: group.zone });
          claimed.push({ task: copyRecord(task), slot });
        }
      });
    }
    batch.claims.forEach((group, g) => {
      if (outcome.claimed[g]!.length < group.slots.length) outcome.nextClaimAtMs[g] = this.nextClaimable(group.queue, group.zone, batch);
    });
    this.commits += 1;
    if (readyQueues.size > 0) {
      const atMs = Math.min(...readyQueues.values());
      this.emit({ kind: 'ready', queues: [...readyQueues.keys()], atMs });
    }
    return outcome;
  }

  /** null when applied, else what the store holds (undefined: gone). */
  private write(write: StateWrite): TaskRecord | undefined | null {
    const current = this.tasks.get(write.record.id);
    if (current === undefined) return undefined;
    const next = write.record;
    if (holdsSameWrite(current, next)) return null;
    if (current.version !== write.expectVersion) return copyRecord(current);
    for (const field of STATE_FIELDS) (current as Record<string, unknown>)[field] = next[field];
    if (next.state === 'PENDING' && write.requeue === 'back') this.seqs.set(current.id, this.nextSeq++);
    return null;
  }

  private nextClaimable(queue: string, zone: string, batch: CommitBatch): number | undefined {
    let next: number | undefined;
    for (const task of this.tasks.values()) {
      if (task.queue !== queue || task.state !== 'PENDING') continue;
      const at = claimableAtMs(task, zone, batch.dispatcherZone, batch.spilloverDelayMs);
      if (at > batch.nowMs && (next === undefined || at < next)) next = at;
    }
    return next;
  }

  sweep(owner: string, nowMs: number, limit: number): SweepCandidates {
    const live = (o: string): boolean => {
      const entry = this.dispatchers.get(o);
      return entry !== undefined && entry.leaseExpiresMs >= nowMs;
    };
    const leaseExpired: TaskRecord[] = [];
    const startExpired: TaskRecord[] = [];
    for (const task of this.tasks.values()) {
      if ((task.state === 'ASSIGNED' || task.state === 'RUNNING') && task.owner !== owner && task.leaseExpiresMs < nowMs && !live(task.owner)) {
        if (leaseExpired.length < limit) leaseExpired.push(copyRecord(task));
      } else if (task.state === 'PENDING' && task.startDeadlineMs > 0 && task.startDeadlineMs <= nowMs) {
        if (startExpired.length < limit) startExpired.push(copyRecord(task));
      }
    }
    return { leaseExpired, startExpired };
  }

  owned(owner: string): TaskRecord[] {
    return [...this.tasks.values()].filter((t) => t.owner === owner && (t.state === 'ASSIGNED' || t.state === 'RUNNING')).map(copyRecord);
  }

  cancel(taskId: string, nowMs: number, error: ErrorInfo): StoreCancelOutcome | undefined {
    const task = this.tasks.get(taskId);
    if (task === undefined) return undefined;
    if (isTerminal(task.state)) return { task: copyRecord(task), cancelled: false, previousOwner: '', previousAttempt: 0 };
    const previousOwner = task.owner;
    const previousAttempt = task.attempt;
    cancelInStore(task, nowMs, error);
    if (previousOwner !== '') this.emit({ kind: 'cancelled', owner: previousOwner, taskId, attempt: previousAttempt });
    return { task: copyRecord(task), cancelled: true, previousOwner, previousAttempt };
  }

  get(taskId: string): TaskRecord | undefined {
    const record = this.tasks.get(taskId);
    return record && copyRecord(record);
  }

  /** The stored record itself, not a copy: only for read-only views (the core harness's live tasks). */
  peek(taskId: string): Readonly<TaskRecord> | undefined {
    return this.tasks.get(taskId);
  }

  getMany(ids: readonly string[]): TaskRecord[] {
    const out: TaskRecord[] = [];
    for (const id of ids) {
      const record = this.tasks.get(id);
      if (record !== undefined) out.push(copyRecord(record));
    }
    return out;
  }

  readyDepth(nowMs: number): ReadyDepth[] {
    const groups = new Map<string, ReadyDepth>();
    for (const t of this.tasks.values()) {
      if (t.state !== 'PENDING' || t.readyAtMs > nowMs) continue;
      const zone = t.preferredZone !== '' ? t.preferredZone : t.acceptedZone;
      const key = `${t.queue}\u0000${zone}`;
      const group = groups.get(key) ?? { queue: t.queue, zone, count: 0 };
      group.count += 1;
      groups.set(key, group);
    }
    return [...groups.values()].sort((a, b) => (a.queue === b.queue ? a.zone.localeCompare(b.zone) : a.queue.localeCompare(b.queue)));
  }

  pendingCount(queue: string): number {
    let n = 0;
    for (const t of this.tasks.values()) if (t.state === 'PENDING' && t.queue === queue) n++;
    return n;
  }

  heldKeys(keys: readonly string[], nowMs: number): Set<string> {
    return new Set(keys.filter((key) => (this.keys.get(key)?.expiresMs ?? -Infinity) > nowMs));
  }

  purge(nowMs: number, finishedBeforeMs: number, limit: number): number {
    const keys = [...this.keys]
      .filter(([, e]) => e.expiresMs <= nowMs)
      .sort(([, a], [, b]) => a.expiresMs - b.expiresMs)
      .slice(0, limit);
    for (const [key] of keys) this.keys.delete(key);
    const finished = [...this.tasks.values()]
      .filter((r) => isTerminal(r.state) && r.updatedMs < finishedBeforeMs)
      .sort((a, b) => a.updatedMs - b.updatedMs)
      .slice(0, limit);
    for (const record of finished) {
      this.tasks.delete(record.id);
      this.seqs.delete(record.id);
      // A purged task's key goes with it: a key always names a task that exists.
      if (record.idempotencyKey !== '' && this.keys.get(record.idempotencyKey)?.taskId === record.id) this.keys.delete(record.idempotencyKey);
    }
    return keys.length + finished.length;
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** How many tasks are in each state (tests). */
  countByState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const task of this.tasks.values()) out[task.state] = (out[task.state] ?? 0) + 1;
    return out;
  }

  private emit(event: StoreEvent): void {
    for (const listener of [...this.listeners]) listener(event);
  }
}

/**
 * An in-memory TaskStore for tests, over MemoryStoreCore.
 * `failNextCommits(n)` makes the next n commits reject without writing
 * anything, to simulate a store outage.
 */
export class MemoryTaskStore implements TaskStore {
  readonly kind = 'memory';
  readonly core: MemoryStoreCore;
  private commitsToFail = 0;
  private closed = false;

  constructor(core = new MemoryStoreCore()) {
    this.core = core;
  }

  get exclusive(): boolean {
    return this.core.exclusive;
  }

  /** Makes the next `n` commit calls reject, writing nothing. */
  failNextCommits(n: number): void {
    this.commitsToFail = n;
  }

  async open(): Promise<void> {
    this.check();
  }

  async register(entry: DispatcherEntry, nowMs: number, leaseExpiresMs: number): Promise<void> {
    this.check();
    this.core.register(entry, nowMs, leaseExpiresMs);
  }

  async heartbeat(owner: string, nowMs: number, leaseExpiresMs: number): Promise<HeartbeatOutcome> {
    this.check();
    return this.core.heartbeat(owner, nowMs, leaseExpiresMs);
  }

  async unregister(owner: string): Promise<void> {
    this.check();
    this.core.unregister(owner);
  }

  async commit(batch: CommitBatch): Promise<CommitOutcome> {
    this.check();
    if (this.commitsToFail > 0) {
      this.commitsToFail--;
      throw new Error('MemoryTaskStore: simulated store outage');
    }
    return this.core.commit(batch);
  }

  async sweep(owner: string, nowMs: number, limit: number): Promise<SweepCandidates> {
    this.check();
    return this.core.sweep(owner, nowMs, limit);
  }

  async owned(owner: string): Promise<TaskRecord[]> {
    this.check();
    return this.core.owned(owner);
  }

  async cancel(taskId: string, nowMs: number, error: ErrorInfo): Promise<StoreCancelOutcome | undefined> {
    this.check();
    return this.core.cancel(taskId, nowMs, error);
  }

  async get(taskId: string): Promise<TaskRecord | undefined> {
    this.check();
    return this.core.get(taskId);
  }

  async getMany(ids: readonly string[]): Promise<TaskRecord[]> {
    this.check();
    return this.core.getMany(ids);
  }

  async readyDepth(nowMs: number): Promise<ReadyDepth[]> {
    this.check();
    return this.core.readyDepth(nowMs);
  }

  async pendingCount(queue: string): Promise<number> {
    this.check();
    return this.core.pendingCount(queue);
  }

  async heldKeys(keys: readonly string[], nowMs: number): Promise<Set<string>> {
    this.check();
    return this.core.heldKeys(keys, nowMs);
  }

  async purge(nowMs: number, finishedBeforeMs: number, limit: number): Promise<number> {
    this.check();
    return this.core.purge(nowMs, finishedBeforeMs, limit);
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    return this.core.subscribe(listener);
  }

  health(): StoreHealth {
    return { ok: !this.closed, detail: this.closed ? 'closed' : 'ok' };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new Error('MemoryTaskStore is closed');
  }
}
