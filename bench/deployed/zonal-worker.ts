/**
 * A worker process as a user runs one: the SDK's Worker from the build named
 * by `sdk`, `slots` slots, a no-op handler. After `go` it counts the tasks it
 * starts (tasks stamped before `go`, the producers' warm-up, are not counted)
 * and prints `count` events; on `report` it prints the submit -> start
 * latencies read from the payload stamps.
 */
import { epochMs, stampOf } from './clock';
import { startTracing } from './tracing';
import { emit, settings } from './messages';
import { followOrchestrator } from './worker-counts';

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
  const latencies: number[] = [];
  const counts = { started: 0, lastMs: 0 };
  const worker = new Worker({
    target: s.target,
    slots: s.slots,
    queues: [s.queue ?? 'default'],
    handler: (task: { payload: Buffer }) => {
      const now = epochMs();
      const stamp = stampOf(task.payload);
      if (!(stamp >= goMs)) return;
      latencies.push(now - stamp);
      counts.started += 1;
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
