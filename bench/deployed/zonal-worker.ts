/**
 * A worker process as a user runs one: the SDK's Worker from the build named
 * by `sdk`, `slots` slots, a no-op handler. After `go` it counts the tasks it
 * starts (tasks stamped before `go`, the producers' warm-up, are not counted)
 * and prints `count` events; on `report` it prints the submit -> start
 * latencies read from the payload stamps.
 */
import { epochMs, percentile, stampOf } from './clock';
import { emit, settings, waitForLine } from './messages';
import { reportCounts } from './worker-counts';

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
  emit('ready');
  await waitForLine('go');
  goMs = epochMs();
  emit('going');
  const stopCounting = reportCounts(counts);
  await waitForLine('report');
  stopCounting();
  const cpu = process.cpuUsage();
  emit('report', { cpuSeconds: (cpu.user + cpu.system) / 1e6, started: counts.started, lastMs: counts.lastMs, latencies: summary(latencies) });
  await waitForLine('stop');
  await worker.close({ graceMs: 500 });
  process.exit(0);
}

function summary(latencies: number[]): Record<string, number> {
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), p999: percentile(latencies, 99.9), n: latencies.length };
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
