/**
 * A producer process as a user runs one: the SDK's ProducerClient from the
 * build named by `sdk`, submitting `tasks` tasks of `payloadBytes` bytes,
 * `inFlight` at a time (closed loop), or at `ratePerSec` (open loop).
 * Each payload starts with its submit stamp (clock.ts) so the worker can
 * measure submit -> start.
 */
import { stampedPayload } from './clock';
import { startTracing } from './tracing';
import { emit, settings, waitForLine } from './messages';
import { driveSubmits } from './submit-loop';

interface Settings {
  sdk: string;
  target: string;
  tasks: number;
  inFlight: number;
  payloadBytes: number;
  ratePerSec?: number;
  queue?: string;
  /** ProducerClient batch options ({ maxTasks: 1 } turns coalescing off). */
  batch?: Record<string, number>;
}

interface Producer {
  ready(): Promise<void>;
  submit(task: { payload: Uint8Array; queue?: string }): Promise<unknown>;
  close(): void;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const tracing = startTracing(s.sdk, 'zonal-bench-producer');
  const { ProducerClient } = require(s.sdk) as { ProducerClient: new (o: unknown) => Producer };
  const producer = new ProducerClient({ target: s.target, ...(s.batch ? { batch: s.batch } : {}) });
  await producer.ready();
  await producer.submit({ payload: stampedPayload(s.payloadBytes), queue: s.queue ?? 'default' });
  emit('ready');
  await waitForLine('go');
  emit('done', await driveSubmits(s, () => producer.submit({ payload: stampedPayload(s.payloadBytes), queue: s.queue ?? 'default' })));
  producer.close();
  await tracing?.shutdown();
  process.exit(0);
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
