/**
 * The peer's worker process: a BullMQ Worker with `concurrency` = slots and a
 * no-op processor. After `go` it counts jobs completed (BullMQ's `completed`
 * event: moved to completed in Redis) and prints `count` events, like
 * zonal-worker.ts, with the same two latencies.
 */
import { Worker } from 'bullmq';
import { epochMs, stampOf } from './clock';
import { emit, settings } from './messages';
import { followOrchestrator, type Counts, type Latencies } from './worker-counts';

interface Settings {
  redisUrl: string;
  queue: string;
  slots: number;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const url = new URL(s.redisUrl);
  let goMs = Infinity;
  const counts: Counts = { completed: 0, lastMs: 0 };
  const latencies: Latencies = { start: [], completed: [] };
  const stamps = new Map<string, number>();
  const worker = new Worker(
    s.queue,
    async (job) => {
      const stamp = stampOf(Buffer.from((job.data as { p: string }).p, 'latin1'));
      if (!(stamp >= goMs)) return;
      latencies.start.push(epochMs() - stamp);
      stamps.set(job.id ?? '', stamp);
    },
    { connection: { host: url.hostname, port: Number(url.port || 6379) }, concurrency: s.slots },
  );
  // Counted once BullMQ has moved the job to completed in Redis.
  worker.on('completed', (job) => {
    const stamp = stamps.get(job.id ?? '');
    if (stamp === undefined) return;
    stamps.delete(job.id ?? '');
    const now = epochMs();
    latencies.completed.push(now - stamp);
    counts.completed += 1;
    counts.lastMs = now;
  });
  await worker.waitUntilReady();
  await followOrchestrator(counts, latencies, (at) => (goMs = at), () => worker.close());
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
