import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { Worker } from '../../src/client/worker';
import { eventually, startHarness, type Harness } from '../support/server-harness';

/**
 * 3 producers and 4 workers run 10,000 tasks over real gRPC; every task
 * reaches exactly one terminal state and every handler runs it once.
 */
describe('10,000 tasks, 3 producers, 4 workers', () => {
  let harness: Harness;
  const workers: Worker[] = [];
  const producers: ProducerClient[] = [];

  beforeAll(async () => {
    harness = await startHarness();
  });

  afterAll(async () => {
    for (const p of producers) p.close();
    await Promise.all(workers.map((w) => w.close({ graceMs: 1_000 })));
    await harness.cleanup();
  });

  it('completes every task exactly once', async () => {
    const TOTAL = 10_000;
    const runs = new Map<string, number>();
    for (let i = 0; i < 4; i++) {
      const worker = new Worker({
        target: harness.target,
        slots: 64,
        workerId: `w${i}`,
        handler: (task) => {
          runs.set(task.taskId, (runs.get(task.taskId) ?? 0) + 1);
          return `done:${task.payload.toString()}`;
        },
      });
      workers.push(worker);
    }
    await Promise.all(workers.map((w) => w.start()));
    for (let i = 0; i < 3; i++) producers.push(new ProducerClient({ target: harness.target }));
    await Promise.all(producers.map((p) => p.ready()));

    const started = Date.now();
    const submitted = await Promise.all(
      Array.from({ length: TOTAL }, (_, i) => producers[i % 3]!.submit({ payload: String(i), queue: 'default' })),
    );
    const ids = submitted.map((s) => s.taskId);
    expect(new Set(ids).size).toBe(TOTAL);
    expect(submitted.every((s) => !s.deduplicated)).toBe(true);

    const done = () => workers.reduce((n, w) => n + w.stats.completed, 0);
    await eventually(() => done() >= TOTAL, 60_000, 'all tasks completed by workers');
    await harness.server.dispatcher.flush();
    const elapsedMs = Date.now() - started;

    // Every task ran exactly once and is COMPLETED with its own result.
    expect(runs.size).toBe(TOTAL);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    const sample = ids.filter((_, i) => i % 97 === 0);
    for (const id of sample) {
      const info = await producers[0]!.get(id);
      expect(info.state).toBe('COMPLETED');
      expect(info.attempt).toBe(1);
      expect(info.result?.toString()).toBe(`done:${ids.indexOf(id)}`);
    }
    // Fair dispatch: every worker got a real share.
    for (const w of workers) expect(w.stats.completed).toBeGreaterThan(TOTAL / 4 / 3);
    expect(workers.reduce((n, w) => n + w.stats.rejectedAcks, 0)).toBe(0);
    const stats = harness.server.dispatcher.stats();
    // Group commit: far fewer commits than tasks x state changes.
    expect(stats.commits).toBeLessThan(TOTAL);
    console.log(`10k tasks end to end in ${elapsedMs} ms (${Math.round(TOTAL / (elapsedMs / 1000))} tasks/s), ${stats.commits} commits`);
  });
});
