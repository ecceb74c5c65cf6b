/**
 * The peer's producer process: BullMQ `Queue.add` on the local Redis, the same
 * shapes as zonal-producer.ts (closed loop with `inFlight` adds, or an open
 * loop at `ratePerSec`), stamped payloads.
 */
import { Queue } from 'bullmq';
import { epochMs, percentile, stampedPayload } from './clock';
import { emit, settings, waitForLine } from './messages';

interface Settings {
  redisUrl: string;
  queue: string;
  tasks: number;
  inFlight: number;
  payloadBytes: number;
  ratePerSec?: number;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const url = new URL(s.redisUrl);
  const queue = new Queue(s.queue, { connection: { host: url.hostname, port: Number(url.port || 6379) } });
  await queue.waitUntilReady();
  const data = (): { p: string } => ({ p: stampedPayload(s.payloadBytes).toString('latin1') });
  // Same options a durable Zonal task gets by default: retried, kept briefly once done.
  const opts = { attempts: 3, removeOnComplete: 1000, removeOnFail: 1000 };
  await queue.add('warm-up', data(), opts);
  emit('ready');
  await waitForLine('go');
  const latencies: number[] = [];
  const addOne = async (): Promise<void> => {
    const startedMs = epochMs();
    await queue.add('t', data(), opts);
    latencies.push(epochMs() - startedMs);
  };
  const t0 = epochMs();
  if (s.ratePerSec !== undefined) {
    const pending: Promise<void>[] = [];
    const intervalMs = 1000 / s.ratePerSec;
    for (let i = 0; i < s.tasks; i++) {
      const waitMs = t0 + i * intervalMs - epochMs();
      if (waitMs > 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
      pending.push(addOne());
    }
    await Promise.all(pending);
  } else {
    let next = 0;
    await Promise.all(
      Array.from({ length: s.inFlight }, async () => {
        while (next++ < s.tasks) await addOne();
      }),
    );
  }
  const elapsedMs = epochMs() - t0;
  const cpu = process.cpuUsage();
  emit('done', {
    cpuSeconds: (cpu.user + cpu.system) / 1e6, submitted: s.tasks, elapsedMs, submitPerSec: s.tasks / (elapsedMs / 1000), submitP50Ms: percentile(latencies, 50), submitP99Ms: percentile(latencies, 99) });
  await queue.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
