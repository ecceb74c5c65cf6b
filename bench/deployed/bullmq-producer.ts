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
  /** Jobs per addBulk call (the peer of Zonal's submitMany). */
  submitMany?: number;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const url = new URL(s.redisUrl);
  const queue = new Queue(s.queue, { connection: { host: url.hostname, port: Number(url.port || 6379) } });
  await queue.waitUntilReady();
  const data = (dueMs?: number): { p: string } => ({ p: stampedPayload(s.payloadBytes, dueMs).toString('latin1') });
  // Same options a durable Zonal task gets by default: retried, kept briefly once done.
  const opts = { attempts: 3, removeOnComplete: 1000, removeOnFail: 1000 };
  await queue.add('warm-up', data(), opts);
  emit('ready');
  await waitForLine('go');
  const bulk = s.submitMany;
  const figures =
    bulk === undefined
      ? await driveSubmits(s, (dueMs) => queue.add('t', data(dueMs), opts))
      : await driveSubmits(s, (dueMs) => queue.addBulk(Array.from({ length: bulk }, () => ({ name: 't', data: data(dueMs), opts }))), bulk);
  emit('done', figures);
  await queue.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
