import type { TaskRecord } from '../../src/core/task';
import { isTerminal } from '../../src/core/task-state';
import type { TaskStore } from '../../src/store/task-store';

interface KeyEntry {
  taskId: string;
  expiresMs: number;
}

/**
 * An in-memory TaskStore for tests. It passes the same contract suite as the
 * durable adapters (test/store/task-store.contract.ts). Records are copied
 * in and out, so neither the caller nor the store can alias the other's.
 *
 * `failNextCommits(n)` makes the next n commits reject without writing
 * anything, to simulate a store outage.
 */
export class MemoryTaskStore implements TaskStore {
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly keys = new Map<string, KeyEntry>();
  private commitsToFail = 0;
  private closed = false;

  /** Makes the next `n` commit calls reject, writing nothing. */
  failNextCommits(n: number): void {
    this.commitsToFail = n;
  }

  async open(): Promise<void> {
    this.check();
  }

  async commit(records: readonly TaskRecord[], idempotencyRetentionMs: number): Promise<void> {
    this.check();
    if (this.commitsToFail > 0) {
      this.commitsToFail--;
      throw new Error('MemoryTaskStore: simulated store outage');
    }
    // Copy everything first: a record that cannot be read fails the commit before anything is written.
    const copies = records.map(copyRecord);
    for (const record of copies) {
      this.tasks.set(record.id, record);
      if (record.idempotencyKey === '') continue;
      const expiresMs = record.createdMs + idempotencyRetentionMs;
      const existing = this.keys.get(record.idempotencyKey);
      // Same rule as the SQL adapters: never re-point a key to an older mapping.
      if (existing && existing.expiresMs > expiresMs) continue;
      this.keys.set(record.idempotencyKey, { taskId: record.id, expiresMs });
    }
  }

  async get(taskId: string): Promise<TaskRecord | undefined> {
    this.check();
    const record = this.tasks.get(taskId);
    return record && copyRecord(record);
  }

  async findByIdempotencyKey(key: string, nowMs: number): Promise<TaskRecord | undefined> {
    this.check();
    const entry = this.keys.get(key);
    if (!entry || entry.expiresMs <= nowMs) return undefined;
    const record = this.tasks.get(entry.taskId);
    return record && copyRecord(record);
  }

  async loadUnfinished(): Promise<TaskRecord[]> {
    this.check();
    return [...this.tasks.values()]
      .filter((r) => !isTerminal(r.state))
      .sort((a, b) => a.seq - b.seq)
      .map(copyRecord);
  }

  async purge(nowMs: number, finishedBeforeMs: number, limit: number): Promise<number> {
    this.check();
    const keys = [...this.keys]
      .filter(([, e]) => e.expiresMs <= nowMs)
      .sort(([, a], [, b]) => a.expiresMs - b.expiresMs)
      .slice(0, limit);
    for (const [key] of keys) this.keys.delete(key);
    const finished = [...this.tasks.values()]
      .filter((r) => isTerminal(r.state) && r.updatedMs < finishedBeforeMs)
      .sort((a, b) => a.updatedMs - b.updatedMs)
      .slice(0, limit);
    for (const record of finished) this.tasks.delete(record.id);
    return keys.length + finished.length;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new Error('MemoryTaskStore is closed');
  }
}

function copyRecord(r: TaskRecord): TaskRecord {
  return {
    ...r,
    payload: new Uint8Array(r.payload),
    labels: { ...r.labels },
    result: r.result === null ? null : new Uint8Array(r.result),
    error: r.error === null ? null : { ...r.error },
  };
}
