/**
 * The peer's worker process: a BullMQ Worker with `concurrency` = slots and a
 * no-op processor. After `go` it counts jobs completed (BullMQ's `completed`
 * event: moved to completed in Redis) and prints `count` events, like
 * zonal-worker.ts.
 */
import { Worker } from 'bullmq';
import { epochMs, percentile, stampOf } from './clock';
import { emit, settings, waitForLine } from './messages';
import { reportCounts } from './worker-counts';

interface Settings {
  redisUrl: string;
  queue: string;
  slots: number;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const url = new URL(s.redisUrl);
  let goMs = Infinity;
  const counts = { started: 0, lastMs: 0 };
  const latencies: number[] = [];
  const counted = new Set<string>();
  const worker = new Worker(
    s.queue,
    async (job) => {
      const now = epochMs();
      const stamp = stampOf(Buffer.from((job.data as { p: string }).p, 'latin1'));
      if (!(stamp >= goMs)) return;
      counted.add(job.id ?? '');
      latencies.push(now - stamp);
    },
    { connection: { host: url.hostname, port: Number(url.port || 6379) }, concurrency: s.slots },
  );
  // Counted once BullMQ has moved the job to completed in Redis.
  worker.on('completed', (job) => {
    if (!counted.has(job.id ?? '')) return;
    counts.started += 1;
    counts.lastMs = epochMs();
  });
  await worker.waitUntilReady();
  emit('ready');
  await waitForLine('go');
  goMs = epochMs();
  emit('going');
  const stopCounting = reportCounts(counts);
  await waitForLine('report');
  stopCounting();
  const cpu = process.cpuUsage();
  emit('report', { cpuSeconds: (cpu.user + cpu.system) / 1e6, started: counts.started, lastMs: counts.lastMs, latencies: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), p999: percentile(latencies, 99.9), n: latencies.length } });
  await waitForLine('stop');
  await worker.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
