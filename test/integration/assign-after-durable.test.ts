/**
 * A task submitted while a commit is in flight joins the next commit; its
 * assignment must wait for that commit too. Found by the chaos soak: during
 * PostgreSQL restarts a worker ran tasks under ids the store never held (the
 * commit that carried their insert failed, but their assignment had gone out
 * with the earlier commit's effects).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/app/start-server';
import { ProducerClient } from '../../src/client/producer-client';
import { Worker } from '../../src/client/worker';
import type { CommitBatch, CommitOutcome } from '../../src/core/commit-batch';
import { eventually, TEST_KEEPALIVE } from '../support/server-harness';
import { MemoryTaskStore } from '../support/memory-task-store';

/** A memory store whose commits can be held at the door, and made to fail. */
class GatedStore extends MemoryTaskStore {
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  /** Commits that have reached the store while it was held. */
  held = 0;
  /** A commit that inserts the task with this idempotency key fails. */
  failKey = '';

  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  release(): void {
    this.gate = undefined;
    this.openGate?.();
  }

  override async commit(batch: CommitBatch): Promise<CommitOutcome> {
    if (this.gate !== undefined) {
      this.held += 1;
      await this.gate;
    }
    if (this.failKey !== '' && batch.inserts.some((r) => r.idempotencyKey === this.failKey)) throw new Error(`GatedStore: the commit inserting ${this.failKey} failed`);
    return super.commit(batch);
  }
}

describe('assignments wait for the commit that makes their task durable', () => {
  let server: RunningServer | undefined;
  let worker: Worker | undefined;
  let producer: ProducerClient | undefined;
  let dataDir = '';

  afterEach(async () => {
    producer?.close();
    await worker?.close({ graceMs: 0 });
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a task submitted during a commit whose own commit fails never reaches a worker', async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-assign-'));
    const store = new GatedStore();
    server = await startServer({ grpcAddress: '127.0.0.1:0', adminAddress: '', xdsAddress: '', dataDir, shutdownGraceMs: 100, core: { keepalive: TEST_KEEPALIVE } }, store);
    const ran: string[] = [];
    worker = new Worker({ target: server.grpcAddress, slots: 4, handler: async (task) => void ran.push(task.taskId) });
    await worker.start();
    producer = new ProducerClient({ target: server.grpcAddress, call: { maxAttempts: 1 } });
    await producer.ready();

    // A first submit starts a commit that the store holds.
    store.hold();
    const first = producer.submit({ payload: 'first', idempotencyKey: 'first' });
    await eventually(() => store.held > 0, 5_000, 'the first commit to reach the store');
    // While it is in flight, a second task arrives: a free slot takes it at once, in memory.
    const second = producer.submit({ payload: 'second', idempotencyKey: 'second' }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await eventually(() => server!.dispatcher.stats().tasksInMemory >= 2, 5_000, 'the second task in memory');
    // The held commit lands; the next one, which carries the second task, fails.
    store.failKey = 'second';
    store.release();
    await first;
    expect(await second).toMatchObject({ reason: 'STORE_UNAVAILABLE' });
    store.failKey = '';
    // The store comes back: a third task runs, so the worker is known to be fed.
    const third = await producer.submit({ payload: 'third', idempotencyKey: 'third' });
    await eventually(() => ran.includes(third.taskId), 10_000, 'the third task to run');
    for (const id of ran) expect(await store.get(id), `task ${id} ran but the store does not hold it`).toBeDefined();
  });
});
