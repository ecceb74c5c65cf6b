/**
 * A worker process as a user runs one: the SDK's Worker from the build named
 * by `sdk`, `slots` slots, a no-op handler. After `go` it counts the tasks
 * whose completion the dispatcher acknowledged as durable (`onSettled`,
 * ACCEPTED), as BullMQ's worker counts jobs moved to completed; tasks stamped
 * before `go` (the producers' warm-up) are not counted. It prints `count`
 * events, and on `report` the submit -> start and submit -> completed
 * latencies read from the payload stamps.
 */
import { epochMs, stampOf } from './clock';
import { startTracing } from './tracing';
import { emit, settings } from './messages';
import { followOrchestrator, type Counts, type Latencies } from './worker-counts';

interface Settings {
  sdk: string;
  target: string;
  slots: number;
  queue?: string;
}

interface WorkerLike {
  start(): Promise<void>;
  close(o?: { graceMs?: number }): Promise<void>;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const tracing = startTracing(s.sdk, 'zonal-bench-worker');
  const { Worker } = require(s.sdk) as { Worker: new (o: unknown) => WorkerLike };
  let goMs = Infinity;
  const latencies: Latencies = { start: [], completed: [] };
  const counts: Counts = { completed: 0, lastMs: 0 };
  /** Stamps of the counted tasks whose completion is not acknowledged yet. */
  const stamps = new Map<string, number>();
  const worker = new Worker({
    target: s.target,
    slots: s.slots,
    queues: [s.queue ?? 'default'],
    handler: (task: { taskId: string; payload: Buffer }) => {
      const stamp = stampOf(task.payload);
      if (!(stamp >= goMs)) return;
      latencies.start.push(epochMs() - stamp);
      stamps.set(task.taskId, stamp);
    },
    onSettled: (info: { taskId: string; result: string; status: string }) => {
      const stamp = stamps.get(info.taskId);
      if (stamp === undefined) return;
      stamps.delete(info.taskId);
      if (info.result !== 'ACCEPTED' || info.status !== 'COMPLETED') return;
      const now = epochMs();
      latencies.completed.push(now - stamp);
      counts.completed += 1;
      counts.lastMs = now;
    },
  });
  await worker.start();
  await followOrchestrator(counts, latencies, (at) => (goMs = at), async () => {
    await worker.close({ graceMs: 500 });
    await tracing?.shutdown();
  });
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
