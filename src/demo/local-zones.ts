/**
 * `npm run demo:zones`: the `zones` Kubernetes overlay's topology on one
 * machine, with the same CLI flags (deploy/local/README.md maps one to the
 * other). It starts, each a process of its own:
 * - a registration token and an admin token (`zonal token new --out`), in a
 *   temp dir (the overlay mounts them from its two Secrets);
 * - the control plane, `zonal xds`, with both token files;
 * - three dispatchers, `zonal serve`, zones a, b and c of region r1, over one
 *   fresh schema of the local PostgreSQL (ZONAL_PG_URL, else
 *   postgres://postgres@127.0.0.1:5432/test; it must answer: this topology
 *   needs the shared database), registering with the control plane with the
 *   same registration token file, the admin port behind the same admin
 *   token, with deploy/kubernetes/base/runtime.yaml as --config;
 * - per zone, a bootstrap (`zonal bootstrap --zone Z --region r1`), workers
 *   (`zonal worker --target xds:///zonal --zone Z …`, GRPC_XDS_BOOTSTRAP set
 *   to it, the built-in handler), and one producer on the SDK through
 *   xds:/// with that bootstrap,
 *   submitting a steady rate and following each task to its end.
 * Nothing restarts a process that dies (Kubernetes would restart its pod):
 * kill a dispatcher and watch its zone's workers and producer move.
 *
 * Ctrl-C (SIGINT) or SIGTERM stops the producers, the workers, the
 * dispatchers (they drain), then the control plane, drops the schema,
 * removes the temp dir and exits 0. A second Ctrl-C kills what is left.
 * Children run in their own process group, so a terminal's Ctrl-C reaches
 * only this process; each is preloaded with parent-watch.js, so if this
 * process dies without stopping them (SIGKILL), they stop themselves.
 *
 * `--json` prints one JSON event a line instead of text:
 *   local-zones-starting {store, root, config}
 *   local-zones-ready    {pid, controlPlane, dispatchers, workers, producers, store, ...}
 *   worker-connected     {worker, zone, pid, dispatcherId, dispatcherZone, atMs} (each welcome, moves included)
 *   zone-stats           {atMs, zones: [{zone, submitted, completed, ..., workers}], dispatchers}
 *   process-exited       {name, role, zone, pid, code, signal, atMs} (a child that exited while running)
 *   local-zones-stopping {reason}
 *   local-zones-stopped  {reason, code, schemaDropped, zones}
 *   local-zones-failed   {message}
 *
 * Run as `local-zones.js producer <spec JSON>`, this file is one zone's
 * producer (the orchestrator starts it so; see runProducer).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { redactStoreUrl } from '../app/store-url';
import { helpText, parseFlags, UsageError, type FlagSpec } from '../cli/flags';
import { alive, killDemoChildrenNow, onStopSignals, startDemoChild, stopDemoChildren, waitForGo, type DemoChild } from './demo-children';
import { chooseDemoStore, dropDemoSchema, type DemoStore } from './demo-store';
import { DEMO_ZONES } from './demo-topology';
import { startSteadyRate, type SteadyRate } from './steady-rate';

const CLI = path.resolve(__dirname, '..', 'cli', 'main.js');
/** The runtime config the Kubernetes manifests ship (the `zonal-runtime` ConfigMap): the same file here. */
const RUNTIME_CONFIG = path.resolve(__dirname, '..', '..', 'deploy', 'kubernetes', 'base', 'runtime.yaml');
const REGION = 'r1';
const TARGET = 'xds:///zonal';
const START_TIMEOUT_MS = 30_000;
const PRODUCER_STOP_TIMEOUT_MS = 5_000;
const WORKER_STOP_TIMEOUT_MS = 10_000;
/** runtime.yaml gives in-flight tasks drainGraceMs 20 s; the workers are gone by then, so a dispatcher's drain is short. */
const DISPATCHER_STOP_TIMEOUT_MS = 30_000;
const CONTROL_PLANE_STOP_TIMEOUT_MS = 5_000;
const STATUS_POLL_MS = 100;

const FLAGS: FlagSpec[] = [
  { name: 'rate', env: 'ZONAL_LOCAL_ZONES_RATE', type: 'number', default: 20, description: 'Tasks per second each zone submits.' },
  { name: 'workers-per-zone', env: 'ZONAL_LOCAL_ZONES_WORKERS_PER_ZONE', type: 'number', default: 2, description: 'Worker processes (`zonal worker`) in each zone.' },
  { name: 'duration-ms', env: 'ZONAL_LOCAL_ZONES_DURATION_MS', type: 'number', default: 0, description: 'Stop by itself after this long once ready (0: run until Ctrl-C).' },
  { name: 'stats-interval-ms', env: 'ZONAL_LOCAL_ZONES_STATS_INTERVAL_MS', type: 'number', default: 5_000, description: 'How often zone-stats (per-zone submitted/completed, where each worker is connected) are printed.' },
  { name: 'json', env: 'ZONAL_LOCAL_ZONES_JSON', type: 'boolean', default: false, description: 'Print JSON events (local-zones-ready, worker-connected, zone-stats, …) instead of text.' },
];

type Role = 'control-plane' | 'dispatcher' | 'worker' | 'producer';

interface Child extends DemoChild {
  role: Role;
  zone: string;
}

const children: Child[] = [];

function startChild(
  name: string,
  role: Role,
  zone: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  options: { stdin?: 'ignore' | 'pipe'; onEvent?: (event: Record<string, unknown>) => void } = {},
): Child {
  // Only the events something waits for or counts are kept for long; the rest would grow without bound.
  const c: Child = Object.assign(startDemoChild(name, args, { ...options, env, keepEvents: 200 }), { role, zone });
  children.push(c);
  return c;
}

const stopChildren = (list: Child[], timeoutMs: number): Promise<void> => stopDemoChildren(list, timeoutMs, 'zonal local-zones');

function killAllNow(): void {
  killDemoChildrenNow(children);
}

/** A one-shot `zonal …` (token, bootstrap): resolves with its stdout. */
function runCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`zonal ${args[0]} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/**
 * Free loopback ports, held open together (so they differ) and then let go.
 * A dispatcher is told its port up front because it advertises it
 * (--advertise-address), as a pod advertises its IP and container port.
 */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

function getJson(address: string, urlPath: string, token: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get(`http://${address}${urlPath}`, { headers: { authorization: `Bearer ${token}` }, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${urlPath}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
        else {
          try {
            resolve(JSON.parse(body));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within 2 s`)));
    req.on('error', reject);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- producer

/** What the orchestrator hands a zone's producer (as JSON, its argument after `producer`). */
interface ProducerSpec {
  zone: string;
  ratePerSec: number;
  statsIntervalMs: number;
}

/** Submits not yet answered plus tasks not yet finished past which the producer skips its turn. */
const MAX_IN_FLIGHT = 2_000;
const TICK_MS = 20;
/** Longer than runtime.yaml's taskLeaseMs (10 s): a task held by a killed dispatcher finishes after its lease. */
const RESULT_TIMEOUT_MS = 60_000;

/**
 * One zone's producer: a ProducerClient through xds:/// (GRPC_XDS_BOOTSTRAP
 * is this zone's bootstrap), submitting `ratePerSec` tasks a second to the
 * `default` queue (where `zonal worker` listens) and watching each to its
 * end. Prints producer-ready once connected, then waits for a `go` line on
 * stdin (sent once every worker runs: it loads while they do, and no early
 * task waits for a worker still connecting); then producer-stats every
 * statsIntervalMs (counts, and which zone's dispatcher accepted and which
 * zone's worker completed the tasks), producer-stopped at the end. SIGTERM
 * or SIGINT: no new submits, exit 0.
 */
async function runProducer(spec: ProducerSpec): Promise<void> {
  const { ProducerClient } = require('../client/producer-client') as typeof import('../client/producer-client');
  const print = (line: object): void => void process.stdout.write(JSON.stringify(line) + '\n');
  const counts = {
    submitted: 0,
    acknowledged: 0,
    submitFailed: 0,
    completed: 0,
    failed: 0,
    watchFailed: 0,
    skipped: 0,
    acceptedByZone: {} as Record<string, number>,
    completedByWorkerZone: {} as Record<string, number>,
    firstSubmitAtMs: 0,
    firstCompletedAtMs: 0,
    lastCompletedAtMs: 0,
    lastError: '',
  };
  let rate: SteadyRate | undefined;
  let statsTimer: NodeJS.Timeout | undefined;
  const bump = (m: Record<string, number>, key: string): void => void (m[key] = (m[key] ?? 0) + 1);
  const stats = (event: string, extra: object = {}): void => print({ event, zone: spec.zone, pid: process.pid, atMs: Date.now(), ...counts, inFlight: rate?.inFlight() ?? 0, ...extra });

  const producer = new ProducerClient({ target: TARGET, zone: spec.zone });
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      if (stopping) return;
      stopping = true;
      rate?.stop();
      if (statsTimer !== undefined) clearInterval(statsTimer);
      // The watches still open fail with SHUTTING_DOWN: not counted, the run is ending.
      producer.close();
      stats('producer-stopped', { reason: signal });
      process.exit(0);
    });
  }
  await producer.ready({ deadlineMs: START_TIMEOUT_MS });
  print({ event: 'producer-ready', zone: spec.zone, pid: process.pid });
  await waitForGo();

  const follow = async (n: number): Promise<void> => {
    let outcome: Awaited<ReturnType<typeof producer.submit>>;
    try {
      outcome = await producer.submit({ payload: `${spec.zone}-${n}`, queue: 'default', maxAttempts: 3 });
    } catch (err) {
      if (!stopping) {
        counts.submitFailed += 1;
        counts.lastError = err instanceof Error ? err.message : String(err);
      }
      return;
    }
    counts.acknowledged += 1;
    bump(counts.acceptedByZone, outcome.servedBy.split('/')[0] ?? '');
    let last: { state: string; workerZone: string } | undefined;
    try {
      for await (const info of producer.watch(outcome.taskId, { timeoutMs: RESULT_TIMEOUT_MS })) last = info;
    } catch (err) {
      if (!stopping) {
        counts.watchFailed += 1;
        counts.lastError = err instanceof Error ? err.message : String(err);
      }
      return;
    }
    if (last?.state === 'COMPLETED') {
      const now = Date.now();
      counts.completed += 1;
      if (counts.firstCompletedAtMs === 0) counts.firstCompletedAtMs = now;
      counts.lastCompletedAtMs = now;
      bump(counts.completedByWorkerZone, last.workerZone);
    } else {
      counts.failed += 1;
      counts.lastError = `task ${outcome.taskId} ended ${last?.state ?? 'unseen'}`;
    }
  };

  counts.firstSubmitAtMs = Date.now();
  rate = startSteadyRate({ ratePerSec: spec.ratePerSec, tickMs: TICK_MS, maxInFlight: MAX_IN_FLIGHT, counts, start: follow });
  statsTimer = setInterval(() => stats('producer-stats'), spec.statsIntervalMs);
}

// ---------------------------------------------------------------- orchestrator

interface WorkerView {
  name: string;
  zone: string;
  proc: Child;
  workerId: string;
  dispatcherId: string;
  dispatcherZone: string;
  connects: number;
}

async function main(): Promise<number> {
  const values = parseFlags(process.argv.slice(2), FLAGS, process.env);
  if (values === 'help') {
    process.stdout.write(
      helpText(
        'demo:zones',
        "Runs the `zones` Kubernetes overlay's topology on this machine: a control plane (zonal xds), three dispatchers (zones a, b, c of region r1) over one fresh schema of the local PostgreSQL, and per zone workers and a producer through xds:/// with that zone's bootstrap. See deploy/local/README.md.",
        FLAGS,
      ).replace('Usage: zonal demo:zones [flags]', 'Usage: npm run demo:zones -- [flags]'),
    );
    return 0;
  }
  const json = values['json'] === true;
  const ratePerSec = Number(values['rate']);
  const workersPerZone = Number(values['workers-per-zone']);
  const durationMs = Number(values['duration-ms']);
  const statsIntervalMs = Number(values['stats-interval-ms']);
  if (!(ratePerSec > 0 && ratePerSec <= 1_000)) throw new UsageError(`--rate must be between 1 and 1000 tasks/s, got ${ratePerSec}`);
  if (!Number.isInteger(workersPerZone) || workersPerZone < 1 || workersPerZone > 16) throw new UsageError(`--workers-per-zone must be an integer from 1 to 16, got ${workersPerZone}`);
  if (!(durationMs >= 0)) throw new UsageError(`--duration-ms must be >= 0, got ${durationMs}`);
  if (!(statsIntervalMs >= 100)) throw new UsageError(`--stats-interval-ms must be >= 100, got ${statsIntervalMs}`);

  const emit = (event: Record<string, unknown>, text?: string): void => {
    if (json) process.stdout.write(JSON.stringify(event) + '\n');
    else if (text !== undefined) process.stdout.write(text + '\n');
  };

  const root = mkdtempSync(path.join(tmpdir(), 'zonal-local-zones-'));
  const startedAtMs = Date.now();
  /** When each start-up step was done, in ms since start: the ready event reports it. */
  const startupMs: Record<string, number> = {};
  const mark = (step: string): void => void (startupMs[step] = Date.now() - startedAtMs);
  let store: DemoStore | undefined;
  let state: 'starting' | 'running' | 'stopping' = 'starting';
  let statsTimer: NodeJS.Timeout | undefined;
  let durationTimer: NodeJS.Timeout | undefined;
  let controlPlane: Child | undefined;
  const dispatchers: Child[] = [];
  const workers: WorkerView[] = [];
  const producers: Child[] = [];

  const latestProducerStats = (p: Child): Record<string, unknown> | undefined =>
    [...p.events].reverse().find((e) => e['event'] === 'producer-stats' || e['event'] === 'producer-stopped');
  const zoneStats = (): Record<string, unknown>[] =>
    DEMO_ZONES.map((zone) => {
      const p = producers.find((c) => c.zone === zone);
      const s = p === undefined ? undefined : latestProducerStats(p);
      const pick = (k: string): unknown => s?.[k] ?? 0;
      return {
        zone,
        submitted: pick('submitted'),
        acknowledged: pick('acknowledged'),
        completed: pick('completed'),
        failed: pick('failed'),
        submitFailed: pick('submitFailed'),
        watchFailed: pick('watchFailed'),
        inFlight: pick('inFlight'),
        acceptedByZone: s?.['acceptedByZone'] ?? {},
        completedByWorkerZone: s?.['completedByWorkerZone'] ?? {},
        firstSubmitAtMs: pick('firstSubmitAtMs'),
        firstCompletedAtMs: pick('firstCompletedAtMs'),
        lastCompletedAtMs: pick('lastCompletedAtMs'),
        ...(s?.['lastError'] ? { lastError: s['lastError'] } : {}),
        workers: workers
          .filter((w) => w.zone === zone)
          .map((w) => ({ name: w.name, pid: w.proc.child.pid, workerId: w.workerId, alive: alive(w.proc), dispatcherId: w.dispatcherId, dispatcherZone: w.dispatcherZone, connects: w.connects })),
      };
    });
  const dispatcherStates = (): Record<string, unknown>[] => dispatchers.map((d) => ({ zone: d.zone, dispatcherId: d.name, pid: d.child.pid, alive: alive(d) }));

  let finished: ((code: number) => void) | undefined;
  const done = new Promise<number>((resolve) => (finished = resolve));
  let stopping: Promise<void> | undefined;
  const stop = (reason: string, code: number): Promise<void> =>
    (stopping ??= (async () => {
      state = 'stopping';
      if (statsTimer !== undefined) clearInterval(statsTimer);
      if (durationTimer !== undefined) clearTimeout(durationTimer);
      emit(
        { event: 'local-zones-stopping', reason },
        code === 0 ? `zonal local-zones: stopping (${reason}): producers, workers, dispatchers (drain), control plane…` : `zonal local-zones: stopping what was started (${reason})…`,
      );
      await stopChildren(producers, PRODUCER_STOP_TIMEOUT_MS);
      await stopChildren(workers.map((w) => w.proc), WORKER_STOP_TIMEOUT_MS);
      await stopChildren(dispatchers, DISPATCHER_STOP_TIMEOUT_MS);
      if (controlPlane !== undefined) await stopChildren([controlPlane], CONTROL_PLANE_STOP_TIMEOUT_MS);
      // Whatever is left (a child started while stopping) goes too.
      await stopChildren(children, 1_000);
      let schemaDropped = false;
      if (store !== undefined && store.kind === 'postgres') {
        const schema = store.schema;
        await dropDemoSchema(store).then(
          () => (schemaDropped = true),
          (err: unknown) => process.stderr.write(`zonal local-zones: could not drop schema ${schema}: ${String(err)}\n`),
        );
      }
      rmSync(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      emit({ event: 'local-zones-stopped', reason, code, schemaDropped, zones: zoneStats().map(({ workers: _w, ...z }) => z) }, `zonal local-zones: stopped${schemaDropped ? ' (schema dropped)' : ''}.`);
      finished?.(code);
    })());

  onStopSignals(() => state === 'stopping', (signal) => void stop(signal, 0), killAllNow);

  try {
    try {
      store = await chooseDemoStore('postgres', process.env, process.pid);
    } catch (err) {
      throw new Error(
        `this topology needs the shared database (three dispatchers over one PostgreSQL schema): ${err instanceof Error ? err.message : String(err)}. ` +
          'Start PostgreSQL, or point ZONAL_PG_URL at one (e.g. postgres://postgres@127.0.0.1:5432/test).',
      );
    }
    if (store.kind !== 'postgres') throw new Error('this topology needs the shared database (PostgreSQL)');
    const pg = store;
    if (state !== 'starting') return await done;
    emit(
      { event: 'local-zones-starting', store: { kind: 'postgres', url: redactStoreUrl(pg.url), schema: pg.schema }, root, config: RUNTIME_CONFIG },
      `zonal local-zones: the zones overlay on this machine; tasks in PostgreSQL ${redactStoreUrl(pg.url)}, schema ${pg.schema} (dropped on exit); config ${path.relative(process.cwd(), RUNTIME_CONFIG)}.`,
    );

    // The Secrets of the overlay: files made here, 0600, in the temp dir.
    const registrationTokenFile = path.join(root, 'secrets', 'xds-registration', 'token');
    const adminTokenFile = path.join(root, 'secrets', 'admin', 'token');
    await Promise.all(
      [registrationTokenFile, adminTokenFile].map((f) => {
        mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 });
        return runCli(['token', 'new', '--out', f]);
      }),
    );
    const adminToken = readFileSync(adminTokenFile, 'utf8').split('\n')[0]!.trim();
    if (state !== 'starting') return await done;

    controlPlane = startChild('control-plane', 'control-plane', '', [
      CLI, 'xds', '--address', '127.0.0.1:0', '--registration-token-file', registrationTokenFile,
      '--admin-address', '127.0.0.1:0', '--admin-token-file', adminTokenFile,
    ], {});
    const cpListening = await controlPlane.waitForEvent('listening', START_TIMEOUT_MS);
    const cpAddress = String(cpListening['xdsAddress']);
    const cpAdminAddress = String(cpListening['adminAddress']);
    mark('controlPlane');
    if (state !== 'starting') return await done;

    // Per zone, what the overlay's init step writes for the zone's clients.
    const bootstraps = new Map<string, string>(DEMO_ZONES.map((zone) => [zone, path.join(root, 'bootstrap', `zone-${zone}.json`)]));
    mkdirSync(path.join(root, 'bootstrap'), { recursive: true });
    const bootstrapsWritten = Promise.all([...bootstraps].map(([zone, file]) => runCli(['bootstrap', '--zone', zone, '--region', REGION, '--xds', cpAddress, '--out', file])));
    bootstrapsWritten.catch(() => undefined);

    const ports = await freePorts(DEMO_ZONES.length);
    DEMO_ZONES.forEach((zone, i) => {
      const id = `dispatcher-${zone}`;
      const address = `127.0.0.1:${ports[i]!}`;
      dispatchers.push(
        startChild(id, 'dispatcher', zone, [
          CLI, 'serve', '--zone', zone, '--region', REGION, '--store', pg.storeUrl,
          '--grpc-address', address, '--advertise-address', address,
          '--admin-address', '127.0.0.1:0', '--admin-token-file', adminTokenFile,
          '--xds-address', 'off', '--register-with', cpAddress, '--xds-registration-token-file', registrationTokenFile,
          '--data-dir', path.join(root, 'data', id), '--config', RUNTIME_CONFIG, '--dispatcher-id', id,
          '--drain-grace-ms', '20000', '--drain-propagation-ms', '2000',
        ], {}),
      );
    });
    const listening = await Promise.all(dispatchers.map((d) => d.waitForEvent('listening', START_TIMEOUT_MS)));
    mark('dispatchersListening');
    await bootstrapsWritten;
    if (state !== 'starting') return await done;

    // Workers start once the control plane serves all three dispatchers HEALTHY (registered with the token):
    // none is sent to another zone for want of its own.
    const startedWaitMs = Date.now();
    for (;;) {
      const status = (await getJson(cpAdminAddress, '/xds/status', adminToken).catch(() => undefined)) as { endpoints?: { id: string; health: string }[] } | undefined;
      const healthy = new Set((status?.endpoints ?? []).filter((e) => e.health === 'HEALTHY').map((e) => e.id));
      if (dispatchers.every((d) => healthy.has(d.name))) break;
      for (const d of dispatchers) if (!alive(d)) throw new Error(`${d.name} exited: ${d.stderrTail.slice(-5).join(' | ')}`);
      if (Date.now() - startedWaitMs > START_TIMEOUT_MS) {
        throw new Error(`the control plane did not serve all three dispatchers as HEALTHY within ${START_TIMEOUT_MS} ms (served: ${JSON.stringify(status?.endpoints ?? [])}; refused registrations show in /xds/status)`);
      }
      await sleep(STATUS_POLL_MS);
    }
    mark('dispatchersHealthy');
    if (state !== 'starting') return await done;

    for (const zone of DEMO_ZONES) {
      for (let i = 1; i <= workersPerZone; i++) {
        const name = `worker-${zone}-${i}`;
        const view: WorkerView = { name, zone, proc: undefined as unknown as Child, workerId: '', dispatcherId: '', dispatcherZone: '', connects: 0 };
        view.proc = startChild(name, 'worker', zone, [CLI, 'worker', '--target', TARGET, '--zone', zone, '--worker-id', name, '--slots', '8', '--queues', 'default'], { GRPC_XDS_BOOTSTRAP: bootstraps.get(zone)! }, { onEvent: (e) => {
          if (e['event'] === 'worker-running') view.workerId = String(e['workerId']);
          if (e['event'] !== 'worker-connected') return;
          view.dispatcherId = String(e['dispatcherId']);
          view.dispatcherZone = String(e['dispatcherZone']);
          view.connects += 1;
          emit(
            { event: 'worker-connected', worker: name, zone, pid: view.proc.child.pid, dispatcherId: view.dispatcherId, dispatcherZone: view.dispatcherZone, connects: view.connects, atMs: Number(e['atMs']) || Date.now() },
            state === 'running' ? `  ${name} (zone ${zone}) is now connected to ${view.dispatcherId} (zone ${view.dispatcherZone})` : undefined,
          );
        } });
        workers.push(view);
      }
    }
    // The producers load (grpc-js-xds takes a while) while the workers connect; they submit once every worker runs.
    for (const zone of DEMO_ZONES) {
      const spec: ProducerSpec = { zone, ratePerSec, statsIntervalMs: Math.min(statsIntervalMs, 1_000) };
      producers.push(startChild(`producer-${zone}`, 'producer', zone, [__filename, 'producer', JSON.stringify(spec)], { GRPC_XDS_BOOTSTRAP: bootstraps.get(zone)! }, { stdin: 'pipe' }));
    }
    await Promise.all(workers.map((w) => w.proc.waitForEvent('worker-running', START_TIMEOUT_MS)));
    mark('workersRunning');
    await Promise.all(producers.map((p) => p.waitForEvent('producer-ready', START_TIMEOUT_MS)));
    mark('producersReady');
    if (state !== 'starting') return await done;
    for (const p of producers) p.child.stdin?.write('go\n');

    // From now on a child that exits is reported and the rest carries on, as in a cluster (nothing restarts it here).
    for (const c of children) {
      void c.exited.then(() => {
        if (state !== 'running') return;
        emit(
          { event: 'process-exited', name: c.name, role: c.role, zone: c.zone, pid: c.child.pid, code: c.child.exitCode, signal: c.child.signalCode, atMs: Date.now() },
          `  ${c.name} exited (${c.child.exitCode ?? c.child.signalCode}); nothing restarts it here (Kubernetes would restart its pod)`,
        );
      });
    }

    state = 'running';
    const dispatcherViews = DEMO_ZONES.map((zone, i) => ({
      zone,
      dispatcherId: dispatchers[i]!.name,
      pid: dispatchers[i]!.child.pid,
      grpcAddress: String(listening[i]!['grpcAddress']),
      advertiseAddress: `127.0.0.1:${ports[i]!}`,
      adminAddress: String(listening[i]!['adminAddress']),
    }));
    const text = [
      `zonal local-zones: ready. Control plane ${cpAddress} (status: curl -H "Authorization: Bearer $(cat ${adminTokenFile})" http://${cpAdminAddress}/xds/status)`,
      ...dispatcherViews.map((d) => `  ${d.dispatcherId} (zone ${d.zone}, region ${REGION}): gRPC ${d.grpcAddress}, admin http://${d.adminAddress} (same token), pid ${d.pid}`),
      `  ${workersPerZone} worker(s) and a producer (${ratePerSec} tasks/s) per zone, through ${TARGET} with bootstraps in ${path.dirname(bootstraps.get('a')!)}`,
      `Try: kill -9 ${dispatcherViews[1]!.pid} (zone b's dispatcher) and watch zone b's workers move. Ctrl-C stops everything.`,
    ].join('\n');
    emit(
      {
        event: 'local-zones-ready',
        pid: process.pid,
        region: REGION,
        zones: [...DEMO_ZONES],
        ratePerSec,
        workersPerZone,
        startupMs,
        config: RUNTIME_CONFIG,
        root,
        store: { kind: 'postgres', url: redactStoreUrl(pg.url), schema: pg.schema },
        controlPlane: { xdsAddress: cpAddress, adminAddress: cpAdminAddress, pid: controlPlane.child.pid },
        registrationTokenFile,
        adminTokenFile,
        dispatchers: dispatcherViews,
        bootstraps: Object.fromEntries(bootstraps),
        workers: workers.map((w) => ({ name: w.name, zone: w.zone, pid: w.proc.child.pid, workerId: w.workerId, dispatcherId: w.dispatcherId, dispatcherZone: w.dispatcherZone })),
        producers: producers.map((p) => ({ name: p.name, zone: p.zone, pid: p.child.pid })),
      },
      text,
    );

    statsTimer = setInterval(() => {
      const zones = zoneStats();
      emit(
        { event: 'zone-stats', atMs: Date.now(), zones, dispatchers: dispatcherStates() },
        '  ' +
          zones
            .map((z) => {
              const ws = (z['workers'] as { dispatcherZone: string; alive: boolean }[]).map((w) => (w.alive ? w.dispatcherZone || '?' : 'x')).join('');
              return `zone ${String(z['zone'])}: ${String(z['submitted'])} submitted, ${String(z['completed'])} completed${Number(z['failed']) > 0 ? `, ${String(z['failed'])} failed` : ''}, workers on ${ws}`;
            })
            .join(' · '),
      );
    }, statsIntervalMs);
    statsTimer.unref();
    if (durationMs > 0) durationTimer = setTimeout(() => void stop(`--duration-ms ${durationMs}`, 0), durationMs);
  } catch (err) {
    if (state !== 'starting') return await done;
    const message = err instanceof Error ? err.message : String(err);
    emit({ event: 'local-zones-failed', message });
    if (!json) process.stderr.write(`zonal local-zones: could not start: ${message}\n`);
    void stop('start failed', 1);
  }
  return done;
}

if (process.argv[2] === 'producer') {
  runProducer(JSON.parse(process.argv[3] ?? '') as ProducerSpec).catch((err: unknown) => {
    process.stdout.write(JSON.stringify({ event: 'producer-failed', message: err instanceof Error ? err.message : String(err) }) + '\n');
    process.exit(1);
  });
} else {
  // Whatever happens to this process, no child outlives it.
  process.on('exit', killAllNow);
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`zonal local-zones: ${err instanceof Error ? err.message : String(err)}\n`);
      killAllNow();
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
}
