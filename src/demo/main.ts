/**
 * `npm run demo`: three zones on this machine, with the heatmap page to look
 * at. It starts
 * - three dispatchers with the real CLI (`zonal serve`), zones a, b and c,
 *   sharing one fresh PostgreSQL schema when PostgreSQL answers (so any
 *   dispatcher's page shows all three), else each on its own SQLite store;
 * - one load process per zone (zone-load.ts): workers of that zone on every
 *   dispatcher, cross-zone links through a FaultProxy (demo-topology.ts:
 *   a↔b 2 ms RTT, b↔c 4 ms, a↔c 10 ms), and a steady producer;
 * then prints each dispatcher's page URL. Ctrl-C (SIGINT) or SIGTERM stops
 * the load, then the dispatchers, drops the schema, removes the temp dirs
 * and exits 0.
 *
 * Children run in their own process group, so Ctrl-C reaches only this
 * process, which stops them in order. Each child is preloaded with
 * parent-watch.js: if this process dies without stopping them (SIGKILL),
 * they stop themselves.
 *
 * `--json` prints events instead of text, one JSON object a line:
 * demo-starting, demo-ready {pages: [{dispatcherId, zone, url}], store,
 * links}, load-stats, demo-stopping, demo-stopped, demo-failed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { helpText, parseFlags, UsageError, type FlagSpec } from '../cli/flags';
import { killDemoChildrenNow, onStopSignals, startDemoChild, stopDemoChildren, type DemoChild } from './demo-children';
import { chooseDemoStore, dropDemoSchema, type DemoStore } from './demo-store';
import { DEMO_ZONES, demoLinks, dispatcherIdOf, type ZoneLoadSpec } from './demo-topology';

const CLI = path.resolve(__dirname, '..', 'cli', 'main.js');
const ZONE_LOAD = path.join(__dirname, 'zone-load.js');
const START_TIMEOUT_MS = 30_000;
const LOAD_STOP_TIMEOUT_MS = 5_000;
const DISPATCHER_STOP_TIMEOUT_MS = 10_000;
const TEXT_STATS_EVERY_MS = 10_000;

const FLAGS: FlagSpec[] = [
  { name: 'store', env: 'ZONAL_DEMO_STORE', type: 'string', default: 'auto', description: 'auto: PostgreSQL (ZONAL_PG_URL, else postgres://postgres@127.0.0.1:5432/test) if it answers within 1 s, else SQLite; or sqlite, postgres, or a postgres:// URL.' },
  { name: 'rate', env: 'ZONAL_DEMO_RATE', type: 'number', default: 40, description: 'Tasks per second each zone submits.' },
  { name: 'admin-port', env: 'ZONAL_DEMO_ADMIN_PORT', type: 'number', default: 9471, description: "Admin (heatmap page) port of zone a's dispatcher; b and c get the next two. 0 picks free ports." },
  { name: 'duration-ms', env: 'ZONAL_DEMO_DURATION_MS', type: 'number', default: 0, description: 'Stop by itself after this long once ready (0: run until Ctrl-C).' },
  { name: 'json', env: 'ZONAL_DEMO_JSON', type: 'boolean', default: false, description: 'Print JSON events (demo-ready with the page URLs, …) instead of text.' },
];

type Child = DemoChild;

const children: Child[] = [];

function startChild(name: string, script: string, args: string[], options: { stdin: 'ignore' | 'pipe' }): Child {
  // No embedded control plane: the demo's dispatchers serve their own page, not xDS.
  const c = startDemoChild(name, [script, ...args], { stdin: options.stdin, env: { ZONAL_XDS_ADDRESS: 'off' } });
  children.push(c);
  return c;
}

const stopChildren = (list: Child[], timeoutMs: number): Promise<void> => stopDemoChildren(list, timeoutMs, 'zonal demo');

function killAllNow(): void {
  killDemoChildrenNow(children);
}

async function main(): Promise<number> {
  const values = parseFlags(process.argv.slice(2), FLAGS, process.env);
  if (values === 'help') {
    process.stdout.write(helpText('demo', 'Runs three zones (a, b, c) on this machine, with dispatchers, workers and a steady load, and prints the heatmap page of each dispatcher.', FLAGS).replace('Usage: zonal demo [flags]', 'Usage: npm run demo -- [flags]'));
    return 0;
  }
  const json = values['json'] === true;
  const ratePerSec = Number(values['rate']);
  const adminPort = Number(values['admin-port']);
  const durationMs = Number(values['duration-ms']);
  if (!(ratePerSec > 0 && ratePerSec <= 2_000)) throw new UsageError(`--rate must be between 1 and 2000 tasks/s, got ${ratePerSec}`);
  if (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65_533) throw new UsageError(`--admin-port must be a port number (0: any free), got ${adminPort}`);
  if (!(durationMs >= 0)) throw new UsageError(`--duration-ms must be >= 0, got ${durationMs}`);

  const emit = (event: Record<string, unknown>, text?: string): void => {
    if (json) process.stdout.write(JSON.stringify(event) + '\n');
    else if (text !== undefined) process.stdout.write(text + '\n');
  };

  const root = mkdtempSync(path.join(tmpdir(), 'zonal-demo-'));
  let store: DemoStore | undefined;
  let state: 'starting' | 'running' | 'stopping' = 'starting';
  let statsTimer: NodeJS.Timeout | undefined;
  let durationTimer: NodeJS.Timeout | undefined;
  const dispatchers: Child[] = [];
  const loads: Child[] = [];

  let finished: ((code: number) => void) | undefined;
  const done = new Promise<number>((resolve) => (finished = resolve));
  let stopping: Promise<void> | undefined;
  const stop = (reason: string, code: number): Promise<void> =>
    (stopping ??= (async () => {
      state = 'stopping';
      if (statsTimer !== undefined) clearInterval(statsTimer);
      if (durationTimer !== undefined) clearTimeout(durationTimer);
      emit({ event: 'demo-stopping', reason }, `zonal demo: stopping (${reason}): load, then dispatchers…`);
      await stopChildren(loads, LOAD_STOP_TIMEOUT_MS);
      await stopChildren(dispatchers, DISPATCHER_STOP_TIMEOUT_MS);
      if (store !== undefined && store.kind === 'postgres') {
        await dropDemoSchema(store).catch((err: unknown) => process.stderr.write(`zonal demo: could not drop schema ${store?.kind === 'postgres' ? store.schema : ''}: ${String(err)}\n`));
      }
      rmSync(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      emit({ event: 'demo-stopped', reason, code }, 'zonal demo: stopped.');
      finished?.(code);
    })());

  onStopSignals(() => state === 'stopping', (signal) => void stop(signal, 0), killAllNow);

  try {
    store = await chooseDemoStore(String(values['store']), process.env, process.pid);
    // A Ctrl-C while starting: stop() has begun; start nothing more.
    if (state !== 'starting') return await done;
    emit(
      { event: 'demo-starting', store: store.kind === 'postgres' ? { kind: 'postgres', schema: store.schema } : { kind: 'sqlite', why: store.why }, root },
      store.kind === 'postgres'
        ? `zonal demo: three zones on this machine, tasks in PostgreSQL schema ${store.schema} (dropped on exit), shared by the three dispatchers.`
        : `zonal demo: three zones on this machine, each dispatcher on its own SQLite store (${store.why}).`,
    );

    // An objective the slow link cannot meet (its round trip alone is 10 ms), so its two cells carry the breach
    // mark; every other pair keeps the built-in p99 objective (250 ms), which it meets.
    const config = path.join(root, 'runtime.yaml');
    writeFileSync(config, 'version: 1\nslo:\n  pairs:\n    "a->c": { p99Ms: 250, p95Ms: 12 }\n    "c->a": { p99Ms: 250, p95Ms: 12 }\n');

    DEMO_ZONES.forEach((zone, i) => {
      const id = dispatcherIdOf(zone);
      const args = [
        'serve', '--zone', zone, '--region', 'demo', '--dispatcher-id', id,
        '--grpc-address', '127.0.0.1:0', '--admin-address', `127.0.0.1:${adminPort === 0 ? 0 : adminPort + i}`,
        '--data-dir', path.join(root, id), '--xds-address', 'off', '--register-with', 'off',
        '--config', config, '--slo-interval-ms', '2000', '--slo-window-ms', '60000',
        '--drain-grace-ms', '1000', '--drain-propagation-ms', '0', '--log-level', 'warn',
      ];
      if (store?.kind === 'postgres') args.push('--store', store.storeUrl);
      dispatchers.push(startChild(id, CLI, args, { stdin: 'ignore' }));
    });
    const listening = await Promise.all(dispatchers.map((d) => d.waitForEvent('listening', START_TIMEOUT_MS)));
    if (state !== 'starting') return await done;
    const endpoints = DEMO_ZONES.map((zone, i) => ({
      id: dispatcherIdOf(zone),
      zone,
      grpcAddress: String(listening[i]!['grpcAddress']),
      adminAddress: String(listening[i]!['adminAddress']),
    }));

    for (const zone of DEMO_ZONES) {
      const spec: ZoneLoadSpec = { zone, ratePerSec, dispatchers: endpoints.map(({ id, zone: z, grpcAddress }) => ({ id, zone: z, grpcAddress })) };
      loads.push(startChild(`load-${zone}`, ZONE_LOAD, [JSON.stringify(spec)], { stdin: 'pipe' }));
    }
    // Producers start once every zone's workers are connected everywhere: no early task waits for a worker.
    await Promise.all(loads.map((l) => l.waitForEvent('workers-ready', START_TIMEOUT_MS)));
    for (const l of loads) l.child.stdin?.write('go\n');
    await Promise.all(loads.map((l) => l.waitForEvent('load-ready', START_TIMEOUT_MS)));
    if (state !== 'starting') return await done;

    // Anything that exits on its own from now on takes the demo down with it, saying which.
    for (const c of [...dispatchers, ...loads]) {
      void c.exited.then(() => {
        if (state !== 'running') return;
        process.stderr.write(`zonal demo: ${c.name} exited (${c.child.exitCode ?? c.child.signalCode}): ${c.stderrTail.slice(-5).join(' | ') || 'no output'}\n`);
        void stop(`${c.name} exited`, 1);
      });
    }

    state = 'running';
    // p50: the links' delays show at once; at p99 the store's commit tails weigh more (the page's selector switches).
    const pages = endpoints.map((e) => ({ dispatcherId: e.id, zone: e.zone, url: `http://${e.adminAddress}/heatmap?quantile=p50`, grpcAddress: e.grpcAddress }));
    const links = demoLinks();
    const text = [
      `  links: within a zone direct (~0.2 ms RTT); ${links.map((l) => `${l.between.join('↔')} +${l.addedRttMs} ms`).join(', ')} RTT (through fault proxies; a↔c is the slow pair)`,
      `  load: ${ratePerSec} tasks/s from each zone, preferred zone cycling a, b, c; SLO p95 ≤ 12 ms on a↔c, which that link cannot meet`,
      store.kind === 'postgres' ? '  every page shows all three dispatchers (they share their latency rows through PostgreSQL):' : "  each page shows its own dispatcher's rows (no shared store):",
      ...pages.map((p) => `    zone ${p.zone} (${p.dispatcherId}): ${p.url}`),
      `Open ${pages[0]!.url} — the matrix fills within a few seconds. Ctrl-C stops everything.`,
    ].join('\n');
    emit({ event: 'demo-ready', pages, store: store.kind === 'postgres' ? { kind: 'postgres', schema: store.schema } : { kind: 'sqlite', why: store.why }, links, ratePerSec, pid: process.pid }, text);

    statsTimer = setInterval(() => {
      const stats = loads.map((l) => [...l.events].reverse().find((e) => e['event'] === 'load-stats')).filter((e) => e !== undefined);
      if (json) for (const s of stats) emit(s);
      else if (stats.length > 0) emit({}, `  load: ${stats.map((s) => `${String(s['zone'])} ${String(s['acknowledged'])} submitted, ${String(s['completed'])} run${Number(s['failed']) > 0 ? `, ${String(s['failed'])} failed (${String(s['lastError'])})` : ''}`).join(' · ')}`);
    }, json ? 5_000 : TEXT_STATS_EVERY_MS);
    statsTimer.unref();
    if (durationMs > 0) durationTimer = setTimeout(() => void stop(`--duration-ms ${durationMs}`, 0), durationMs);
  } catch (err) {
    if (state !== 'starting') return await done;
    let message = err instanceof Error ? err.message : String(err);
    if (message.includes('EADDRINUSE')) message += ` (is another demo running? --admin-port ${adminPort} is taken: pick other ports, or 0 for any free ones)`;
    emit({ event: 'demo-failed', message });
    if (!json) process.stderr.write(`zonal demo: could not start: ${message}\n`);
    void stop('start failed', 1);
  }
  return done;
}

// Whatever happens to this process, no child outlives it.
process.on('exit', killAllNow);

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`zonal demo: ${err instanceof Error ? err.message : String(err)}\n`);
    killAllNow();
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
