/**
 * A producer process as a user runs one: the SDK's ProducerClient from the
 * build named by `sdk`, submitting `tasks` tasks of `payloadBytes` bytes,
 * `inFlight` at a time (closed loop), or at `ratePerSec` (open loop).
 * Each payload starts with its submit stamp (clock.ts) so the worker can
 * measure submit -> start.
 */
import { epochMs, percentile, stampedPayload } from './clock';
import { emit, settings, waitForLine } from './messages';

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
  const { ProducerClient } = require(s.sdk) as { ProducerClient: new (o: unknown) => Producer };
  const producer = new ProducerClient({ target: s.target, ...(s.batch ? { batch: s.batch } : {}) });
  await producer.ready();
  await producer.submit({ payload: stampedPayload(s.payloadBytes), queue: s.queue ?? 'default' });
  emit('ready');
  await waitForLine('go');
  const latencies: number[] = [];
  const submitOne = async (): Promise<void> => {
    const startedMs = epochMs();
    await producer.submit({ payload: stampedPayload(s.payloadBytes), queue: s.queue ?? 'default' });
    latencies.push(epochMs() - startedMs);
  };
  const t0 = epochMs();
  if (s.ratePerSec !== undefined) {
    const pending: Promise<void>[] = [];
    const intervalMs = 1000 / s.ratePerSec;
    for (let i = 0; i < s.tasks; i++) {
      const due = t0 + i * intervalMs;
      const waitMs = due - epochMs();
      if (waitMs > 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
      pending.push(submitOne());
    }
    await Promise.all(pending);
  } else {
    let next = 0;
    await Promise.all(
      Array.from({ length: s.inFlight }, async () => {
        while (next++ < s.tasks) await submitOne();
      }),
    );
  }
  const elapsedMs = epochMs() - t0;
  const cpu = process.cpuUsage();
  emit('done', {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    submitted: s.tasks,
    elapsedMs,
    submitPerSec: s.tasks / (elapsedMs / 1000),
    submitP50Ms: percentile(latencies, 50),
    submitP99Ms: percentile(latencies, 99),
  });
  producer.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
