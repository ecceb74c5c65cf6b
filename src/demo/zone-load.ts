/**
 * One zone's load for `npm run demo`, a process of its own on the SDK as an
 * application would use it: a Worker in this zone connected to each of the
 * three dispatchers (its own directly, the others through a FaultProxy with
 * the link's delay, demo-topology.ts), an idle Worker on each link whose
 * stream only carries heartbeats (the RTT series: a busy stream sends
 * none), and a ProducerClient to this zone's dispatcher submitting a steady
 * rate of tasks whose preferred zone cycles a, b, c, so every dispatcher
 * hands work to workers of every zone.
 *
 * Argument: a ZoneLoadSpec as JSON. Prints JSON lines on stdout:
 * `workers-ready` once its workers are welcomed by all three dispatchers;
 * it then waits for a `go` line on stdin (sent once every zone's workers
 * are in place, so no early task waits for a worker that is still
 * connecting) and prints `load-ready` when the producer is connected,
 * `load-stats` every 5 s, `load-stopped` at the end. SIGTERM or SIGINT
 * stops it: no new submits, workers drain, proxies close, exit 0.
 */
import { ProducerClient, Worker } from '../index';
import { FaultProxy } from '../testing/fault-proxy';
import { DEMO_IDLE_QUEUE, DEMO_QUEUE, DEMO_ZONES, linkOneWayMs, type ZoneLoadSpec } from './demo-topology';
import { waitForGo } from './demo-children';
import { startSteadyRate, type SteadyRate } from './steady-rate';

const TICK_MS = 20;
const STATS_EVERY_MS = 5_000;
/** Submits not yet answered past which the producer skips its turn (a dispatcher that stalls must not pile up work here). */
const MAX_PENDING_SUBMITS = 500;
const WORKER_SLOTS = 8;

function print(line: object): void {
  process.stdout.write(JSON.stringify(line) + '\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as ZoneLoadSpec;
  const { zone } = spec;
  const proxies: FaultProxy[] = [];
  const workers: Worker[] = [];
  let producer: ProducerClient | undefined;
  const counts = { submitted: 0, acknowledged: 0, failed: 0, skipped: 0, lastError: '' };
  let rate: SteadyRate | undefined;
  const pending = (): number => rate?.inFlight() ?? 0;
  let statsTimer: NodeJS.Timeout | undefined;

  const completed = (): number => workers.reduce((n, w) => n + w.stats.completed, 0);

  let stopping: Promise<void> | undefined;
  const stop = (reason: string): Promise<void> =>
    (stopping ??= (async () => {
      rate?.stop();
      if (statsTimer !== undefined) clearInterval(statsTimer);
      // Let answered-soon submits land, then close: the rest fail with SHUTTING_DOWN, which is fine here.
      for (let waited = 0; pending() > 0 && waited < 1_000; waited += 50) await sleep(50);
      producer?.close();
      await Promise.all(workers.map((w) => w.close({ graceMs: 1_000 }).catch(() => undefined)));
      await Promise.all(proxies.map((p) => p.close()));
      print({ event: 'load-stopped', zone, reason, ...counts, completed: completed() });
    })());
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => void stop(signal).then(() => process.exit(0)));
  }

  const handler = async (): Promise<string> => {
    await sleep(2 + Math.random() * 3);
    return 'ok';
  };
  for (const d of spec.dispatchers) {
    const oneWayMs = linkOneWayMs(zone, d.zone);
    let target = d.grpcAddress;
    if (oneWayMs > 0) {
      const proxy = await FaultProxy.start({ target: d.grpcAddress, faults: { latencyMs: oneWayMs } });
      proxies.push(proxy);
      target = proxy.address;
    }
    workers.push(new Worker({ target, zone, workerId: `w${zone}-${d.id}`, slots: WORKER_SLOTS, queues: [DEMO_QUEUE], handler }));
    workers.push(new Worker({ target, zone, workerId: `w${zone}-${d.id}-idle`, slots: 1, queues: [DEMO_IDLE_QUEUE], handler }));
  }
  await Promise.all(workers.map((w) => w.start({ deadlineMs: 30_000 })));
  print({ event: 'workers-ready', zone, workers: workers.length });
  await waitForGo();

  const own = spec.dispatchers.find((d) => d.zone === zone);
  if (own === undefined) throw new Error(`no dispatcher of zone ${zone} in ${JSON.stringify(spec.dispatchers)}`);
  producer = new ProducerClient({ target: own.grpcAddress, zone });
  await producer.ready({ deadlineMs: 30_000 });
  print({ event: 'load-ready', zone, pid: process.pid, proxies: proxies.map((p) => p.address) });

  const client = producer;
  rate = startSteadyRate({
    ratePerSec: spec.ratePerSec,
    tickMs: TICK_MS,
    maxInFlight: MAX_PENDING_SUBMITS,
    counts,
    start: (n) =>
      client.submit({ payload: `${zone}-${n}`, queue: DEMO_QUEUE, preferredZone: DEMO_ZONES[n % DEMO_ZONES.length]!, maxAttempts: 3 }).then(
        () => void (counts.acknowledged += 1),
        (err: unknown) => {
          counts.failed += 1;
          counts.lastError = err instanceof Error ? err.message : String(err);
        },
      ),
  });
  statsTimer = setInterval(() => print({ event: 'load-stats', zone, ...counts, completed: completed(), pending: pending() }), STATS_EVERY_MS);
}

main().catch((err: unknown) => {
  print({ event: 'load-failed', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
