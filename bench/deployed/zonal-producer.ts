/**
 * A producer process as a user runs one: the SDK's ProducerClient from the
 * build named by `sdk`, submitting `tasks` tasks of `payloadBytes` bytes,
 * `inFlight` at a time (closed loop), or at `ratePerSec` (open loop);
 * with `submitMany: N`, N tasks per `submitMany` call.
 * Each payload starts with its submit stamp (clock.ts) so the worker can
 * measure submit -> start and submit -> completed.
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
  /** Tasks per submitMany call (bulk); absent: one submit per task. */
  submitMany?: number;
}

interface Task {
  payload: Uint8Array;
  queue?: string;
}

interface Producer {
  ready(): Promise<void>;
  submit(task: Task): Promise<unknown>;
  submitMany(tasks: Task[]): Promise<unknown>;
  close(): void;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const tracing = startTracing(s.sdk, 'zonal-bench-producer');
  const { ProducerClient } = require(s.sdk) as { ProducerClient: new (o: unknown) => Producer };
  const producer = new ProducerClient({ target: s.target, ...(s.batch ? { batch: s.batch } : {}) });
  const queue = s.queue ?? 'default';
  await producer.ready();
  await producer.submit({ payload: stampedPayload(s.payloadBytes), queue });
  emit('ready');
  await waitForLine('go');
  const bulk = s.submitMany;
  const figures =
    bulk === undefined
      ? await driveSubmits(s, (dueMs) => producer.submit({ payload: stampedPayload(s.payloadBytes, dueMs), queue }))
      : await driveSubmits(s, (dueMs) => producer.submitMany(Array.from({ length: bulk }, () => ({ payload: stampedPayload(s.payloadBytes, dueMs), queue }))), bulk);
  emit('done', figures);
  producer.close();
  await tracing?.shutdown();
  process.exit(0);
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
