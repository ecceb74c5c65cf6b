/**
 * A producer for the failover scenario: the SDK's ProducerClient from the
 * build under test, submitting one task every `intervalMs` without waiting
 * for the previous one (open loop, so a call hung on a stopped dispatcher
 * does not stop the others), one attempt each with a `callTimeoutMs`
 * deadline, so every sample says where one call went. It remembers every
 * call (sent, answered, served by) and answers the orchestrator's questions
 * (history.ts):
 *   first {sinceMs, servedBy?, notServedBy?, timeoutMs}: the first call acknowledged at or after sinceMs that matches
 *   last {servedBy}: the last call acknowledged by servedBy
 *   window {fromMs, toMs}: calls sent in [fromMs, toMs) by who served them, and failures by code
 *   lastFailure: when the last failed call ended
 * With an xds: target the bootstrap comes from GRPC_XDS_BOOTSTRAP_CONFIG.
 */
import { epochMs } from '../../deployed/clock';
import { emit, settings } from '../../deployed/messages';
import { answerCommands, History } from './history';

interface Settings {
  sdk: string;
  target: string;
  zone: string;
  intervalMs: number;
  callTimeoutMs: number;
}

interface Producer {
  ready(o?: { deadlineMs?: number }): Promise<void>;
  submit(task: { payload: string }): Promise<{ taskId: string; servedBy: string }>;
  close(): void;
}

interface Sample {
  sentMs: number;
  doneMs: number;
  servedBy?: string;
  code?: string;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const { ProducerClient } = require(s.sdk) as { ProducerClient: new (o: unknown) => Producer };
  const producer = new ProducerClient({ target: s.target, zone: s.zone, call: { callTimeoutMs: s.callTimeoutMs, maxAttempts: 1 } });
  await producer.ready({ deadlineMs: 30_000 });
  const warm = await producer.submit({ payload: 'warm-up' });
  const history = new History<Sample>((x) => x.doneMs);
  let n = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const tick = (): void => {
    const sentMs = epochMs();
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    producer.submit({ payload: `failover-${n++}` }).then(
      (r) => {
        inFlight -= 1;
        history.add({ sentMs, doneMs: epochMs(), servedBy: r.servedBy });
      },
      (err: unknown) => {
        inFlight -= 1;
        const e = err as { reason?: unknown; code?: unknown };
        history.add({ sentMs, doneMs: epochMs(), code: String(e?.reason ?? e?.code ?? 'unknown') });
      },
    );
  };
  const timer = setInterval(tick, s.intervalMs);
  emit('ready', { servedBy: warm.servedBy, pid: process.pid });

  const matches = (c: Record<string, unknown>) => (x: Sample): boolean =>
    x.servedBy !== undefined &&
    x.doneMs >= Number(c['sinceMs'] ?? 0) &&
    (c['servedBy'] === undefined || x.servedBy === c['servedBy']) &&
    (c['notServedBy'] === undefined || x.servedBy !== c['notServedBy']);
  answerCommands(
    {
      first: async (c) => ({ found: (await history.first(matches(c), Number(c['timeoutMs'] ?? 10_000))) ?? null }),
      last: (c) => {
        const served = history.items.filter((x) => x.servedBy === c['servedBy']);
        return { found: served.reduce<Sample | null>((a, x) => (a === null || x.sentMs > a.sentMs ? x : a), null) };
      },
      lastFailure: () => ({ found: history.items.reduce<number | null>((a, x) => (x.servedBy === undefined && (a === null || x.doneMs > a) ? x.doneMs : a), null) }),
      window: (c) => {
        const from = Number(c['fromMs']);
        const to = Number(c['toMs']);
        const byServer: Record<string, number> = {};
        const failures: Record<string, number> = {};
        for (const x of history.items) {
          if (x.sentMs < from || x.sentMs >= to) continue;
          if (x.servedBy !== undefined) byServer[x.servedBy] = (byServer[x.servedBy] ?? 0) + 1;
          else failures[x.code ?? 'unknown'] = (failures[x.code ?? 'unknown'] ?? 0) + 1;
        }
        return { found: { byServer, failures, inFlight, maxInFlight } };
      },
    },
    async () => {
      clearInterval(timer);
      producer.close();
      process.exit(0);
    },
  );
  process.once('SIGTERM', () => {
    clearInterval(timer);
    producer.close();
    process.exit(0);
  });
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
