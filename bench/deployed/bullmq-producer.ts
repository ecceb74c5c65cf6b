/**
 * The peer's producer process: BullMQ `Queue.add` on the local Redis, the same
 * shapes as zonal-producer.ts (closed loop with `inFlight` adds, or an open
 * loop at `ratePerSec`), stamped payloads.
 */
import { Queue } from 'bullmq';
import { stampedPayload } from './clock';
import { emit, settings, waitForLine } from './messages';
import { driveSubmits } from './submit-loop';

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
  emit('done', await driveSubmits(s, () => queue.add('t', data(), opts)));
  await queue.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
