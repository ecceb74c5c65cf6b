/**
 * Failover: how fast producers and workers leave their own zone's
 * dispatcher after `kill -9` and after `SIGSTOP` (5a, 5b), and how fast an
 * xDS endpoint change reaches clients (5c), each beside a client that
 * reaches the same dispatchers without xDS.
 *
 * Topology (separate processes, the built CLI and SDK, default settings):
 * - `zonal xds`, the project's control plane;
 * - dispatchers `da` (zone a) and `db` (zone b), registered with it
 *   (`--xds-address off --register-with`), over one PostgreSQL schema (each on
 *   its own SQLite when PostgreSQL is unreachable);
 * - through `xds:///zonal`, with a bootstrap (`zonal bootstrap`) naming their
 *   zone: a zone-a producer submitting every 5 ms (open loop, one attempt per
 *   call), two zone-a workers and one zone-b worker;
 * - beside them, a zone-a producer and worker on `ipv4:<da>,<db>`: what a
 *   `dns:///` name with those two records resolves to (pick_first, own zone
 *   first); restarted before each signal so they start on `da`;
 * - an EDS watcher (a raw ADS client of zone a) that stamps each push.
 *
 * One repetition: a third dispatcher `da2` registers in zone a and is then
 * stopped with SIGTERM (5c: the push that adds it, then the one that drains
 * it, against the zone-a producer's picks); `da` is SIGSTOPped until every
 * client moved (or the cap), then SIGCONTed and everyone is back; `da` is
 * killed with SIGKILL (and restarted when another repetition follows).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client as PgClient } from 'pg';
import { startChild, type Child } from '../deployed/children';
import { epochMs } from '../deployed/clock';
import { benchFile, check, type Figure, type Scenario, type ScenarioReport, type SuiteOptions, type TargetCheck } from './report';

const REGION = 'r1';
/** The zone-a producers submit one task this often (ms). */
const SUBMIT_INTERVAL_MS = 5;
/** Deadline of each submit (one attempt, no retry): a call to a hung dispatcher gives up after this. */
const CALL_TIMEOUT_MS = 1_000;
/** The SDK breaker's rolling window (DEFAULT_BREAKER_OPTIONS.rollingWindowMs). */
const BREAKER_WINDOW_MS = 10_000;
/** The dns/ipv4 clients (restarted before each signal) submit this long before the signal. */
const DNS_WARM_MS = 1_500;

interface Sample {
  sentMs: number;
  doneMs: number;
  servedBy?: string;
}

interface Welcome {
  atMs: number;
  dispatcherId: string;
  dispatcherZone: string;
  firstTaskMs?: number;
}

interface Endpoint {
  address: string;
  zone: string;
  health: string;
}

/** One client's move after a signal: ms from the signal, and where to; undefined = not within the cap. */
interface Move {
  ms: number;
  to: string;
  /** Workers: ms from the signal to the first task of the new session. */
  firstTaskMs?: number;
}

interface SignalRun {
  producer?: Move;
  workers: (Move | undefined)[];
  dnsProducer?: Move;
  dnsWorker?: Move;
  /** The push in which the control plane served `da` UNHEALTHY, ms from the signal. */
  unhealthyPushMs?: number;
  producerFailures: Record<string, number>;
  dnsProducerFailures: Record<string, number>;
  /** The xds:/// producer's calls in the 10 s before the signal (the SDK breaker's rolling window): served, and failed by code. */
  producerBefore: { served: number; failures: Record<string, number> };
}

interface EndpointRun {
  /** Push adding da2 -> first zone-a producer call sent (picked) to da2. */
  addedPickMs?: number;
  /** Same, to that call's acknowledgement. */
  addedAckMs?: number;
  /** Push adding da2 -> a fresh plain connection to it READY (the EDS watcher's). */
  connectMs?: number;
  /** Push draining da2 -> last zone-a producer call sent to da2 (0 when none after the push). */
  removedPickMs?: number;
  /** Calls sent while da2 was served (from the push adding it to the one draining it): to da2, and in all. */
  xdsCallsToNew: number;
  xdsCalls: number;
  dnsCallsToNew: number;
  dnsCalls: number;
  windowMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const healthy = (h: string): boolean => h === 'HEALTHY' || h === 'UNKNOWN';

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** Median and max over repetitions; a repetition that did not move counts as Infinity (so "did not move" wins the median when most did not). */
function summarize(values: (number | undefined)[]): { median: number; max: number; moved: number; n: number } {
  const list = values.map((v) => (v === undefined ? Number.POSITIVE_INFINITY : v));
  return { median: median(list), max: list.length > 0 ? Math.max(...list) : Number.NaN, moved: values.filter((v) => v !== undefined).length, n: values.length };
}

const fmt = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? 'not moved' : `${v.toFixed(0)} ms`);

export const failover: Scenario = async (options: SuiteOptions): Promise<ScenarioReport> => {
  const reps = options.quick ? 1 : 3;
  /** How long an xds:/// client may take to move before that repetition counts as "did not move". */
  const xdsCapMs = options.quick ? 5_000 : 10_000;
  /** How long the dns/ipv4 clients are watched (and the dispatcher kept stopped) before "did not move". */
  // Full mode stays under the dispatchers' 10 s task lease, so a stopped dispatcher is not also reaped.
  const dnsCapMs = options.quick ? 3_000 : 8_000;
  const notes: string[] = [];
  const figures: Figure[] = [];
  const targets: TargetCheck[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'zonal-failover-'));
  const children: Child[] = [];
  const stopped = new Set<Child>();
  let queryId = 0;
  const startedMs = epochMs();

  // PostgreSQL lets the dispatchers share tasks; without it each keeps its own (clients' moves are measured the same).
  let store: string | undefined;
  let schema: string | undefined;
  try {
    const probe = new PgClient({ connectionString: options.pgUrl, connectionTimeoutMillis: 2_000 });
    await probe.connect();
    await probe.end();
    schema = `zonal_failover_${Date.now()}_${process.pid}`;
    store = `${options.pgUrl}${options.pgUrl.includes('?') ? '&' : '?'}schema=${schema}`;
  } catch (err) {
    notes.push(`PostgreSQL unreachable at ${options.pgUrl} (${String(err instanceof Error ? err.message : err)}): each dispatcher runs on its own SQLite store, so tasks are not shared; the clients' moves are measured the same way.`);
  }

  const track = (child: Child): Child => {
    children.push(child);
    return child;
  };
  const node = (name: string, script: string, settings: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Child =>
    track(startChild(name, process.execPath, [benchFile(options, script), JSON.stringify(settings)], { ZONAL_LOG_LEVEL: 'warn', ...env }));
  const ask = async <T>(child: Child, cmd: string, fields: Record<string, unknown> = {}): Promise<T | undefined> => {
    const id = `${++queryId}`;
    child.send(JSON.stringify({ cmd, id, ...fields }));
    const answer = await child.next(`answer-${id}`, Number(fields['timeoutMs'] ?? 0) + 15_000);
    if (answer['failed'] !== undefined || answer['unknownCommand'] !== undefined) throw new Error(`${child.name} ${cmd}: ${JSON.stringify(answer)}`);
    return (answer['found'] ?? undefined) as T | undefined;
  };

  try {
    const cp = track(startChild('control-plane', process.execPath, [options.cli, 'xds', '--address', '127.0.0.1:0', '--admin-address', 'off', '--log-level', 'warn']));
    const cpAddress = String((await cp.next('listening', 60_000))['xdsAddress']);
    const watcher = node('eds-watcher', 'suite/failover/eds-watcher.js', { controlPlane: cpAddress, zone: 'a', region: REGION });
    // `zonal bootstrap`, as a user writes one per zone; each client gets its own node id.
    const bootstraps = new Map<string, Record<string, unknown>>();
    const bootstrapsMade = Promise.all(
      ['a', 'b'].map(async (zone) => {
        const { stdout } = await promisify(execFile)(process.execPath, [options.cli, 'bootstrap', '--zone', zone, '--region', REGION, '--xds', cpAddress]);
        bootstraps.set(zone, JSON.parse(stdout) as Record<string, unknown>);
      }),
    );
    const bootstrapEnv = (zone: string, nodeId: string): NodeJS.ProcessEnv => {
      const doc = structuredClone(bootstraps.get(zone)!);
      (doc['node'] as Record<string, unknown>)['id'] = nodeId;
      return { GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(doc) };
    };

    const dispatcher = (id: string, zone: string, address = '127.0.0.1:0'): Child =>
      track(
        startChild(id, process.execPath, [
          options.cli, 'serve', '--zone', zone, '--region', REGION, '--dispatcher-id', id, '--grpc-address', address,
          '--admin-address', 'off', '--xds-address', 'off', '--register-with', cpAddress, '--data-dir', path.join(dir, id), '--log-level', 'warn',
          ...(store !== undefined ? ['--store', store] : []),
        ]),
      );
    const listening = async (child: Child): Promise<string> => String((await child.next('listening', 60_000))['grpcAddress']);

    // The first dispatcher creates and migrates the schema; the second starts against it.
    let da = dispatcher('da', 'a');
    const daAddress = await listening(da);
    const db = dispatcher('db', 'b');
    const dbAddress = await listening(db);
    await Promise.all([bootstrapsMade, watcher.next('ready', 60_000)]);

    const producer = (name: string, target: string, env: NodeJS.ProcessEnv = {}): Child =>
      node(name, 'suite/failover/producer.js', { sdk: options.sdk, target, zone: 'a', intervalMs: SUBMIT_INTERVAL_MS, callTimeoutMs: CALL_TIMEOUT_MS }, env);
    const worker = (name: string, zone: string, target: string, env: NodeJS.ProcessEnv = {}): Child =>
      node(name, 'suite/failover/worker.js', { sdk: options.sdk, target, zone, workerId: name, slots: 8 }, env);
    const pa = producer('xds-producer-a', 'xds:///zonal', bootstrapEnv('a', 'xds-producer-a'));
    const zoneAWorkers = ['xds-worker-a1', 'xds-worker-a2'].map((name) => worker(name, 'a', 'xds:///zonal', bootstrapEnv('a', name)));
    const wb = worker('xds-worker-b', 'b', 'xds:///zonal', bootstrapEnv('b', 'xds-worker-b'));
    await Promise.all([pa, ...zoneAWorkers, wb].map((c) => c.next('ready', 60_000)));
    const dnsTarget = `ipv4:${daAddress},${dbAddress}`;
    notes.push(
      `Started in ${((epochMs() - startedMs) / 1000).toFixed(1)} s: control plane, dispatchers da (zone a, ${daAddress}) and db (zone b, ${dbAddress}) on ${store !== undefined ? 'one PostgreSQL schema' : 'SQLite'}, ` +
        `all on default settings (control-plane health window 1 s, dispatcher registration heartbeat 250 ms, worker heartbeat 500 ms, SDK HTTP/2 keepalive 30 s + 10 s); ` +
        `xds:/// clients: a zone-a producer (a submit every ${SUBMIT_INTERVAL_MS} ms, open loop, 1 attempt, ${CALL_TIMEOUT_MS} ms deadline), 2 zone-a workers, 1 zone-b worker. ` +
        `The comparison clients use ${dnsTarget.replace(/127\.0\.0\.1:\d+/g, (a) => (a === daAddress ? 'da' : 'db'))} (the address list a dns:/// name with those two records resolves to; grpc-js gives it to pick_first the same way, and one machine cannot serve a DNS name with two ports).`,
    );

    /** Pushes seen by the watcher from `sinceMs` on, until one satisfies `pred`; resolves with its arrival stamp. */
    const awaitPush = async (sinceMs: number, pred: (endpoints: Endpoint[]) => boolean, timeoutMs: number): Promise<number | undefined> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) return undefined;
        const e = await watcher.next('eds', left).catch(() => undefined);
        if (e === undefined) return undefined;
        if (Number(e['atMs']) >= sinceMs && pred(e['endpoints'] as Endpoint[])) return Number(e['atMs']);
      }
    };
    const producerMove = async (p: Child, sinceMs: number, victim: string, capMs: number): Promise<Move | undefined> => {
      const s = await ask<Sample>(p, 'first', { sinceMs, notServedBy: victim, timeoutMs: capMs });
      return s === undefined ? undefined : { ms: s.doneMs - sinceMs, to: s.servedBy ?? '' };
    };
    const workerMove = async (w: Child, sinceMs: number, victim: string, capMs: number): Promise<Move | undefined> => {
      const welcome = await ask<Welcome>(w, 'first', { sinceMs, notDispatcher: victim, timeoutMs: capMs });
      if (welcome === undefined) return undefined;
      const withTask = await ask<Welcome>(w, 'first', { sinceMs, notDispatcher: victim, withTask: true, timeoutMs: 2_000 });
      return { ms: welcome.atMs - sinceMs, to: welcome.dispatcherId, ...(withTask?.firstTaskMs !== undefined ? { firstTaskMs: withTask.firstTaskMs - sinceMs } : {}) };
    };
    /** Every zone-a client is on `da` again (the producer's calls and every worker's stream); resolves with ms from `sinceMs` to the last of them. */
    const allOnDa = async (clients: { producers: Child[]; workers: Child[] }, sinceMs: number, timeoutMs: number): Promise<number> => {
      const times = await Promise.all([
        ...clients.producers.map(async (p) => {
          const s = await ask<Sample>(p, 'first', { sinceMs, servedBy: 'a/da', timeoutMs });
          if (s === undefined) throw new Error(`${p.name}: no call served by da within ${timeoutMs} ms`);
          return s.doneMs;
        }),
        ...clients.workers.map(async (w) => {
          const placed = await ask<Welcome>(w, 'placement');
          if (placed?.dispatcherId === 'da') return Math.max(sinceMs, placed.atMs);
          const back = await ask<Welcome>(w, 'first', { sinceMs, dispatcher: 'da', timeoutMs });
          if (back === undefined) throw new Error(`${w.name}: not back on da within ${timeoutMs} ms`);
          return back.atMs;
        }),
      ]);
      return Math.max(...times) - sinceMs;
    };
    const backNotes: string[] = [];
    const startDnsClients = async (): Promise<{ producer: Child; worker: Child; readyMs: number }> => {
      const dp = producer('dns-producer-a', dnsTarget);
      const dw = worker('dns-worker-a', 'a', dnsTarget);
      const [pr, wr] = await Promise.all([dp.next('ready', 60_000), dw.next('ready', 60_000)]);
      if (pr['servedBy'] !== 'a/da' || wr['dispatcherId'] !== 'da') throw new Error(`the dns clients did not start on da: ${JSON.stringify({ pr, wr })}`);
      return { producer: dp, worker: dw, readyMs: epochMs() };
    };
    const stopChild = async (c: Child): Promise<void> => {
      await c.stop();
      children.splice(children.indexOf(c), 1);
    };

    const endpointRuns: EndpointRun[] = [];
    const stopRuns: SignalRun[] = [];
    const killRuns: SignalRun[] = [];
    const settles: string[] = [];
    /** Sends `signal` to da and measures every zone-a client until it moved (or its cap). */
    const signalRun = async (signal: 'SIGKILL' | 'SIGSTOP', dns: { producer: Child; worker: Child; readyMs: number }): Promise<SignalRun> => {
      await allOnDa({ producers: [pa, dns.producer], workers: [...zoneAWorkers, dns.worker] }, epochMs(), 10_000);
      // Steady traffic first: the SDK's breaker (50 % of at least 10 calls in 10 s) would open on the few failures
      // of a failover if they were most of a fresh producer's calls, and then fail fast for its 5 s reset timeout.
      await sleep(Math.max(0, dns.readyMs + DNS_WARM_MS - epochMs()));
      const victim = da;
      // The xds:/// producer's breaker window (10 s, src/resilience/breaker.ts:32) must not be loaded with failures of an earlier phase.
      const recent = (await ask<{ byServer: Record<string, number>; failures: Record<string, number> }>(pa, 'window', { fromMs: epochMs() - BREAKER_WINDOW_MS, toMs: epochMs() })) ?? { byServer: {}, failures: {} };
      const recentServed = Object.values(recent.byServer).reduce((a, b) => a + b, 0);
      const recentFailed = Object.values(recent.failures).reduce((a, b) => a + b, 0);
      const lastFailure = await ask<number>(pa, 'lastFailure');
      const settleMs = lastFailure === undefined || recentFailed <= Math.max(20, recentServed * 0.1) ? 0 : Math.max(0, lastFailure + BREAKER_WINDOW_MS + 500 - epochMs());
      if (settleMs > 0) {
        settles.push(`${signal} #${(signal === 'SIGKILL' ? killRuns : stopRuns).length + 1}: ${(settleMs / 1000).toFixed(1)} s`);
        await sleep(settleMs);
      }
      const pushed = awaitPush(epochMs(), (eps) => eps.some((e) => e.address === daAddress && e.health === 'UNHEALTHY'), xdsCapMs);
      const before = (await ask<{ byServer: Record<string, number>; failures: Record<string, number> }>(pa, 'window', { fromMs: epochMs() - 10_000, toMs: epochMs() })) ?? { byServer: {}, failures: {} };
      // The signal time is taken as it is sent, not once the process is reaped.
      const t0 = epochMs();
      victim.process.kill(signal);
      if (signal === 'SIGSTOP') stopped.add(victim);
      let run: SignalRun;
      try {
        const [producerMoved, workers, dnsProducer, dnsWorker, unhealthyAt] = await Promise.all([
          producerMove(pa, t0, 'a/da', xdsCapMs),
          Promise.all(zoneAWorkers.map((w) => workerMove(w, t0, 'da', xdsCapMs))),
          producerMove(dns.producer, t0, 'a/da', dnsCapMs),
          workerMove(dns.worker, t0, 'da', dnsCapMs),
          pushed,
        ]);
        const failures = (await ask<Record<string, unknown>>(pa, 'window', { fromMs: t0 - CALL_TIMEOUT_MS, toMs: t0 + (producerMoved?.ms ?? xdsCapMs) })) ?? {};
        const dnsFailures = (await ask<Record<string, unknown>>(dns.producer, 'window', { fromMs: t0 - CALL_TIMEOUT_MS, toMs: t0 + (dnsProducer?.ms ?? dnsCapMs) })) ?? {};
        run = {
          ...(producerMoved !== undefined ? { producer: producerMoved } : {}),
          workers,
          ...(dnsProducer !== undefined ? { dnsProducer } : {}),
          ...(dnsWorker !== undefined ? { dnsWorker } : {}),
          ...(unhealthyAt !== undefined ? { unhealthyPushMs: unhealthyAt - t0 } : {}),
          producerFailures: (failures as { failures?: Record<string, number> }).failures ?? {},
          dnsProducerFailures: (dnsFailures as { failures?: Record<string, number> }).failures ?? {},
          producerBefore: { served: Object.values(before.byServer).reduce((a, b) => a + b, 0), failures: before.failures },
        };
      } finally {
        if (signal === 'SIGSTOP') {
          victim.process.kill('SIGCONT');
          stopped.delete(victim);
        }
      }
      return run;
    };

    for (let rep = 0; rep < reps; rep++) {
      let dns = await startDnsClients();

      // 5c: a new zone-a dispatcher registers; then it drains (SIGTERM) and leaves.
      const addSince = epochMs();
      const added = awaitPush(addSince, (eps) => eps.some((e) => e.zone === 'a' && e.address !== daAddress && healthy(e.health)), 30_000);
      const da2 = dispatcher('da2', 'a');
      const da2Address = await listening(da2);
      const addedMs = await added;
      if (addedMs === undefined) throw new Error('no EDS push added da2');
      const firstOnNew = await ask<Sample>(pa, 'first', { sinceMs: addSince, servedBy: 'a/da2', timeoutMs: 5_000 });
      let connected: Record<string, unknown> | undefined;
      while (connected === undefined || connected['address'] !== da2Address) {
        connected = await watcher.next('connected', 10_000).catch(() => ({ address: da2Address, error: 'no connection report' }));
      }
      await sleep(300);
      const removeSince = epochMs();
      const removed = awaitPush(removeSince, (eps) => !eps.some((e) => e.address === da2Address && healthy(e.health)), 10_000);
      da2.process.kill('SIGTERM');
      const removedMs = await removed;
      await stopChild(da2);
      const lastOnNew = await ask<Sample>(pa, 'last', { servedBy: 'a/da2' });
      const windowEnd = removedMs ?? epochMs();
      const xdsWindow = (await ask<{ byServer: Record<string, number> }>(pa, 'window', { fromMs: addedMs, toMs: windowEnd })) ?? { byServer: {} };
      const dnsWindow = (await ask<{ byServer: Record<string, number> }>(dns.producer, 'window', { fromMs: addedMs, toMs: windowEnd })) ?? { byServer: {} };
      const sum = (m: Record<string, number>): number => Object.values(m).reduce((a, b) => a + b, 0);
      endpointRuns.push({
        ...(firstOnNew !== undefined ? { addedPickMs: firstOnNew.sentMs - addedMs, addedAckMs: firstOnNew.doneMs - addedMs } : {}),
        ...(connected['error'] === undefined ? { connectMs: Number(connected['readyMs']) - Number(connected['pushMs']) } : {}),
        ...(removedMs !== undefined && lastOnNew !== undefined ? { removedPickMs: Math.max(0, lastOnNew.sentMs - removedMs) } : {}),
        xdsCallsToNew: xdsWindow.byServer['a/da2'] ?? 0,
        xdsCalls: sum(xdsWindow.byServer),
        dnsCallsToNew: dnsWindow.byServer['a/da2'] ?? 0,
        dnsCalls: sum(dnsWindow.byServer),
        windowMs: windowEnd - addedMs,
      });

      // 5b: SIGSTOP, then SIGCONT once everyone moved (or the cap), and everyone back on da.
      stopRuns.push(await signalRun('SIGSTOP', dns));
      const resumedMs = epochMs();
      await Promise.all([stopChild(dns.producer), stopChild(dns.worker)]);
      backNotes.push(`#${rep + 1} after SIGCONT ${fmt(await allOnDa({ producers: [pa], workers: zoneAWorkers }, resumedMs, 20_000))}`);
      dns = await startDnsClients();

      // 5a: kill -9; da is restarted at its address when another repetition follows.
      killRuns.push(await signalRun('SIGKILL', dns));
      await Promise.all([stopChild(dns.producer), stopChild(dns.worker), stopChild(da)]);
      if (rep + 1 < reps) {
        const restartMs = epochMs();
        da = dispatcher('da', 'a', daAddress);
        await listening(da);
        backNotes.push(`#${rep + 1} after the restart of da (process start included) ${fmt(await allOnDa({ producers: [pa], workers: zoneAWorkers }, restartMs, 20_000))}`);
      }
    }

    // ---- Figures and targets ----
    const slower = (r: SignalRun): number | undefined => (r.producer === undefined || r.workers.some((w) => w === undefined) ? undefined : Math.max(r.producer.ms, ...r.workers.map((w) => w!.ms)));
    const workersMs = (r: SignalRun): number | undefined => (r.workers.some((w) => w === undefined) ? undefined : Math.max(...r.workers.map((w) => w!.ms)));
    const describe = (label: string, runs: SignalRun[], limitMs: number, id: string): void => {
      const prod = summarize(runs.map((r) => r.producer?.ms));
      const work = summarize(runs.map(workersMs));
      const dnsProd = summarize(runs.map((r) => r.dnsProducer?.ms));
      const dnsWork = summarize(runs.map((r) => r.dnsWorker?.ms));
      const of = `median of ${runs.length}`;
      const value = (s: { median: number }, cap: number): number => (Number.isFinite(s.median) ? s.median : cap);
      figures.push({ name: `${label}: xds:/// zone-a producer moved (signal -> first submit acknowledged by another dispatcher), ${of}`, value: prod.median, unit: 'ms' });
      figures.push({ name: `${label}: xds:/// zone-a workers moved (signal -> the slower of 2 welcomed by another dispatcher), ${of}`, value: work.median, unit: 'ms' });
      figures.push({
        name: `${label}: ipv4:/dns:/// zone-a producer moved, ${of}${Number.isFinite(dnsProd.median) ? '' : ` (did not move within the ${dnsCapMs} ms cap; the value is the cap)`}`,
        value: value(dnsProd, dnsCapMs),
        unit: 'ms',
        versus: { name: 'xds:/// producer, same signal', value: prod.median },
      });
      figures.push({
        name: `${label}: ipv4:/dns:/// zone-a worker moved, ${of}${Number.isFinite(dnsWork.median) ? '' : ` (did not move within the ${dnsCapMs} ms cap; the value is the cap)`}`,
        value: value(dnsWork, dnsCapMs),
        unit: 'ms',
        versus: { name: 'xds:/// workers, same signal', value: work.median },
      });
      const measured = Math.max(prod.median, work.median);
      targets.push(check(id, `${label}: zone-a producers and workers on another dispatcher (the slower of the producer's and the workers' medians)`, Number.isFinite(measured) ? measured : Number.NaN, '<', limitMs, 'ms'));
      const perRun = runs
        .map(
          (r, i) =>
            `#${i + 1}: producer ${fmt(r.producer?.ms)}${r.producer ? ` (to ${r.producer.to})` : ''}, workers ${r.workers.map((w) => `${fmt(w?.ms)}${w ? ` (to ${w.to}, first task ${fmt(w.firstTaskMs)})` : ''}`).join(' / ')}, ` +
            `dns producer ${fmt(r.dnsProducer?.ms)}, dns worker ${fmt(r.dnsWorker?.ms)}; control plane pushed da UNHEALTHY at ${fmt(r.unhealthyPushMs)}; ` +
            `xds producer in the 10 s before: ${r.producerBefore.served} served, failed ${JSON.stringify(r.producerBefore.failures)}; submits failed from ${CALL_TIMEOUT_MS} ms before the signal until the move: xds ${JSON.stringify(r.producerFailures)}, dns ${JSON.stringify(r.dnsProducerFailures)}; slower xds ${fmt(slower(r))}`,
        )
        .join('; ');
      notes.push(
        `${label} (${id}): max over runs: producer ${fmt(prod.max)}, workers ${fmt(work.max)}, dns producer ${fmt(dnsProd.max)} (${dnsProd.moved}/${dnsProd.n} moved within ${dnsCapMs} ms), dns worker ${fmt(dnsWork.max)} (${dnsWork.moved}/${dnsWork.n} moved). ${perRun}.`,
      );
    };
    describe('kill -9 of the zone-a dispatcher', killRuns, 1_000, '5a');
    describe('SIGSTOP of the zone-a dispatcher', stopRuns, 2_000, '5b');

    const addedPick = summarize(endpointRuns.map((r) => r.addedPickMs));
    const addedAck = summarize(endpointRuns.map((r) => r.addedAckMs));
    const removedPick = summarize(endpointRuns.map((r) => r.removedPickMs));
    const of = `median of ${endpointRuns.length}`;
    figures.push({ name: `xDS endpoint added (a zone-a dispatcher registers): EDS push -> first zone-a producer call sent to it, ${of}`, value: addedPick.median, unit: 'ms' });
    figures.push({ name: `xDS endpoint added: EDS push -> that call acknowledged, ${of}`, value: addedAck.median, unit: 'ms' });
    figures.push({ name: `xDS endpoint drained (SIGTERM: DRAINING, then deregistered): EDS push -> last zone-a producer call sent to it, ${of}`, value: removedPick.median, unit: 'ms' });
    const xdsShare = endpointRuns.reduce((a, r) => a + r.xdsCallsToNew, 0);
    const xdsAll = endpointRuns.reduce((a, r) => a + r.xdsCalls, 0);
    const dnsShare = endpointRuns.reduce((a, r) => a + r.dnsCallsToNew, 0);
    const dnsAll = endpointRuns.reduce((a, r) => a + r.dnsCalls, 0);
    figures.push({
      name: `ipv4:/dns:/// zone-a producer: calls served by the new endpoint while it was registered (${dnsAll} calls in all)`,
      value: dnsShare,
      unit: 'calls',
      versus: { name: `xds:/// zone-a producer, same windows (${xdsAll} calls in all)`, value: xdsShare },
    });
    const endpointMs = Math.max(addedPick.median, removedPick.median);
    targets.push(check('5c', 'an xDS endpoint change reaches clients (the slower of "added -> first pick" and "drained -> last pick", medians)', Number.isFinite(endpointMs) ? endpointMs : Number.NaN, '<', 100, 'ms'));
    notes.push(
      `5c: the change is timed by an EDS watcher (a raw ADS client of zone a) when the push reaches it; the zone-a producer's pick is the send time of its first call served by the new dispatcher (resolution ${SUBMIT_INTERVAL_MS} ms), ` +
        `and after the DRAINING push the send time of its last call served by it. Max: added ${fmt(addedPick.max)} (ack ${fmt(addedAck.max)}), drained ${fmt(removedPick.max)}. Per run: ` +
        endpointRuns.map((r, i) => `#${i + 1}: added ${fmt(r.addedPickMs)} (ack ${fmt(r.addedAckMs)}; a fresh plain connection to it, opened on the push, READY after ${fmt(r.connectMs)}), drained ${fmt(r.removedPickMs)}, xds ${r.xdsCallsToNew}/${r.xdsCalls} calls to it, dns ${r.dnsCallsToNew}/${r.dnsCalls} in ${r.windowMs.toFixed(0)} ms`).join('; ') +
        '. An ipv4: list (or a dns:/// name, re-resolved at most every 30 s and only after a connection fails) never learns of a new dispatcher.',
    );
    notes.push(
      'In the added case a pick needs a READY connection to the new dispatcher, which has just started (its first commits are slow too, see the ack times): the EDS watcher opens a plain gRPC connection to it on the same push, and the time that took is the part of the first pick that is connection setup rather than xDS.',
    );
    notes.push(
      `The ipv4/dns clients are restarted before each signal (so they start on da) and submit for ${DNS_WARM_MS} ms first: a fresh producer whose few calls were mostly the failover's failures ` +
        'would open its SDK circuit breaker (50 % of at least 10 calls in 10 s, src/resilience/breaker.ts:29-35) and fail fast with CIRCUIT_OPEN for the 5 s reset timeout - seen in early runs as a 5.1 s "move" after kill -9.',
    );
    notes.push(
      `Timing: every stamp is epochMs() (one machine clock across processes); the signal time is taken just before kill(). A producer has moved at the acknowledgement of its first submit served by another dispatcher; a worker at the Welcome of another dispatcher (the first task on that session is in the per-run notes). ` +
        `Caps: xds:/// clients ${xdsCapMs} ms, ipv4/dns clients ${dnsCapMs} ms (a SIGSTOPped dispatcher stays stopped that long when they do not move). ${reps} repetition(s); total ${((epochMs() - startedMs) / 1000).toFixed(1)} s.`,
    );
    notes.push(
      'What bounds each path (defaults): kill -9 - the connection fails at once and grpc-js-xds fails over to priority 1 with no timer; the worker reconnects after its first backoff step ' +
        '(100 ms with 0.5 jitter, src/client/worker.ts:169). SIGSTOP - the TCP connection stays open, so nothing fails: the control plane serves da UNHEALTHY once it has been silent for the health window ' +
        '(1 s, src/cli/xds-command.ts:11, src/xds/control-plane.ts:89; da heartbeats every window/4 = 250 ms, src/app/start-server.ts:94), and producers follow that push; a worker stream counts as silent after ' +
        'SILENT_AFTER_INTERVALS (2, src/client/worker-connection.ts:38) heartbeat intervals (500 ms on loopback, minIntervalMs src/core/keepalive-policy.ts:29), then probes at every check (interval/2 = 250 ms, ' +
        'src/client/worker-connection.ts:192) and leaves once another dispatcher answered OTHERS_ANSWERED_TO_LEAVE (3, src/client/worker.ts:101) probes or its own missed one (probe deadline max(250 ms, interval), src/client/worker.ts:332): ' +
        'about 1000 + 2 x 250 ms + reconnect and Welcome. The ipv4/dns clients have no such judge: after kill -9 pick_first tries the next address once the connection is refused; after SIGSTOP only the SDK HTTP/2 keepalive ' +
        'notices (a PING every 30 s on a connection with calls, dropped 10 s after an unanswered one: src/core/http2-keepalive.ts:30-31), so 10 to 40 s after the stop; a worker stream that hits its idle timeout ' +
        '(max(3 x interval, --base-idle-ms 5 s)) reconnects over the same still-open connection to the stopped dispatcher, and that stream is given up only after the 10 s Welcome timeout (src/client/worker-connection.ts:40).',
    );
    notes.push(
      `Before each signal the xds:/// producer's last ${BREAKER_WINDOW_MS / 1000} s hold at most max(20, 10 %) failed calls, else the scenario waits until its last failure is that old (its SDK breaker opens at 50 % of at least 10 calls in that window, then fails fast with CIRCUIT_OPEN for 5 s): ` +
        `waited ${settles.length > 0 ? settles.join(', ') : 'never'}. Without that wait, a kill -9 within 10 s of a phase with many timed-out calls (the return to a dispatcher SIGSTOPped 15 s, past its 10 s task lease) once measured 5.06 s, all CIRCUIT_OPEN after the first failures.`,
    );
    notes.push(`Back on da after each signal (zone-a producer and workers; workers return through the zone rebalance, after the 2 s minimum session age): ${backNotes.join('; ')}.`);
    return { scenario: 'failover', figures, targets, notes };
  } finally {
    // A stopped process cannot act on SIGTERM: continue it first. Clients stop before the dispatchers, the control plane last.
    for (const c of stopped) c.process.kill('SIGCONT');
    const isServer = (c: Child): boolean => c.name === 'control-plane' || /^d[a-z0-9]+$/.test(c.name);
    await Promise.all(children.filter((c) => !isServer(c)).map((c) => c.stop().catch(() => undefined)));
    await Promise.all(children.filter((c) => isServer(c) && c.name !== 'control-plane').map((c) => c.stop().catch(() => undefined)));
    await Promise.all(children.filter((c) => c.name === 'control-plane').map((c) => c.stop().catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
    if (schema !== undefined) {
      const pg = new PgClient({ connectionString: options.pgUrl, connectionTimeoutMillis: 5_000 });
      try {
        await pg.connect();
        await pg.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } catch (err) {
        notes.push(`could not drop schema ${schema}: ${String(err)}`);
      } finally {
        await pg.end().catch(() => undefined);
      }
    }
  }
};
