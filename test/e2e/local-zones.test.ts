import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_URL, skipWithoutPostgres } from '../support/postgres';

/**
 * `npm run demo:zones` (dist/demo/local-zones.js) as a user runs it: the
 * `zones` overlay's topology on this machine, a control plane, three
 * dispatchers over one fresh PostgreSQL schema and, per zone, two
 * `zonal worker`s and a producer through xds:/// with that zone's
 * bootstrap. Everything below is read from the JSON events it prints.
 * Tasks flow in every zone, zone b's dispatcher is killed with SIGKILL and
 * its workers move to another zone, then SIGTERM stops the run, which
 * exits 0 and drops its schema.
 */
const DEMO = path.resolve(__dirname, '..', '..', 'dist', 'demo', 'local-zones.js');
const ZONES = ['a', 'b', 'c'];
/** Measured 120–207 ms on the project machine (2 cores, loopback, other jobs running); the bound leaves room for a busier machine. */
const WORKER_MOVE_BOUND_MS = 2_000;

type Event = Record<string, unknown>;

interface WorkerStats {
  name: string;
  pid: number;
  alive: boolean;
  dispatcherZone: string;
}

interface ZoneStats {
  zone: string;
  submitted: number;
  completed: number;
  acceptedByZone: Record<string, number>;
  completedByWorkerZone: Record<string, number>;
  firstSubmitAtMs: number;
  firstCompletedAtMs: number;
  workers: WorkerStats[];
}

interface Ready {
  pid: number;
  root: string;
  store: { schema: string };
  startupMs: Record<string, number>;
  controlPlane: { pid: number };
  dispatchers: { zone: string; dispatcherId: string; pid: number }[];
  workers: { name: string; zone: string; pid: number }[];
  producers: { zone: string; pid: number }[];
}

/** Whether `pid` is still one of this run's processes (not a reused pid): its command line names the demo. */
function isOurs(pid: number): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('parent-watch.js') || cmdline.includes('local-zones.js');
  } catch {
    return false;
  }
}

async function schemaExists(schema: string): Promise<boolean> {
  const db = new Client({ connectionString: PG_URL });
  await db.connect();
  try {
    return (await db.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount === 1;
  } finally {
    await db.end();
  }
}

describe.skipIf(skipWithoutPostgres())('npm run demo:zones: the zones overlay on one machine', () => {
  let demo: ChildProcess | undefined;
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  const events: Event[] = [];
  const stderr: string[] = [];
  const listeners = new Set<() => void>();
  let launchedAtMs = 0;
  let ready: Ready | undefined;
  let startedSchema = '';
  let startedRoot = '';

  /** The first event (searching from `from`) that `match` accepts, or an error naming `what` after `timeoutMs`. */
  function waitFor(what: string, match: (e: Event) => boolean, timeoutMs: number, from = 0): Promise<Event> {
    return new Promise((resolve, reject) => {
      let seen = from;
      const check = (): void => {
        for (; seen < events.length; seen++) {
          if (match(events[seen]!)) {
            done();
            resolve(events[seen]!);
            return;
          }
        }
        if (demo?.exitCode !== null || demo?.signalCode !== null) {
          done();
          reject(new Error(`the demo exited (${demo?.exitCode ?? demo?.signalCode}) before ${what}; stderr: ${stderr.slice(-8).join('\n')}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        const last = [...events].reverse().find((e) => e['event'] === 'zone-stats');
        reject(new Error(`no ${what} within ${timeoutMs} ms; last zone-stats: ${JSON.stringify(last?.['zones'])}; stderr: ${stderr.slice(-8).join('\n')}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
  }

  const zonesOf = (e: Event): ZoneStats[] => e['zones'] as ZoneStats[];
  const isStats = (e: Event): boolean => e['event'] === 'zone-stats';

  beforeAll(async () => {
    launchedAtMs = Date.now();
    demo = spawn(process.execPath, [DEMO, '--json', '--rate', '20', '--workers-per-zone', '2', '--stats-interval-ms', '250'], {
      env: { ...process.env, ZONAL_PG_URL: PG_URL },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so the cleanup can end it and anything left in that group at once.
      detached: true,
    });
    const child = demo;
    // 'close', not 'exit': by then every line it printed has been read.
    exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    void exited.then(() => {
      for (const l of [...listeners]) l();
    });
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        events.push(JSON.parse(line) as Event);
      } catch {
        return;
      }
      for (const l of [...listeners]) l();
    });
    readline.createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      if (stderr.length > 200) stderr.shift();
    });
    const starting = await waitFor('local-zones-starting', (e) => e['event'] === 'local-zones-starting', 15_000);
    startedSchema = String((starting['store'] as { schema: string }).schema);
    startedRoot = String(starting['root']);
    ready = (await waitFor('local-zones-ready', (e) => e['event'] === 'local-zones-ready', 50_000)) as unknown as Ready;
    console.log(`demo:zones ready ${Date.now() - launchedAtMs} ms after launch (its steps, ms since its start: ${JSON.stringify(ready.startupMs)})`);
  }, 60_000);

  afterAll(async () => {
    // Whatever the assertions did: nothing this test started outlives it.
    if (demo?.pid !== undefined && demo.exitCode === null && demo.signalCode === null) {
      try {
        process.kill(-demo.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    }
    // The demo's children run in process groups of their own (so Ctrl-C reaches only the demo): end each one still here.
    const pids = ready === undefined ? [] : [ready.controlPlane.pid, ...ready.dispatchers.map((d) => d.pid), ...ready.workers.map((w) => w.pid), ...ready.producers.map((p) => p.pid)];
    for (const pid of pids) if (isOurs(pid)) process.kill(pid, 'SIGKILL');
    if (startedSchema !== '' && (await schemaExists(startedSchema))) {
      const db = new Client({ connectionString: PG_URL });
      await db.connect();
      await db.query(`DROP SCHEMA IF EXISTS ${startedSchema} CASCADE`).finally(() => db.end());
    }
    if (startedRoot !== '') rmSync(startedRoot, { recursive: true, force: true });
  }, 30_000);

  it('runs tasks in every zone, each zone on its own dispatcher, with the runtime config the manifests ship', async () => {
    expect(ready!.dispatchers.map((d) => [d.zone, d.dispatcherId])).toEqual(ZONES.map((z) => [z, `dispatcher-${z}`]));
    expect(ready!.workers.filter((w) => w.zone === 'b')).toHaveLength(2);
    expect((ready as unknown as { config: string }).config).toBe(path.resolve(__dirname, '..', '..', 'deploy', 'kubernetes', 'base', 'runtime.yaml'));

    const flowing = await waitFor(
      'tasks completed in every zone by that zone\'s workers, each on its own zone\'s dispatcher',
      (e) =>
        isStats(e) &&
        zonesOf(e).every(
          (z) => z.completed > 0 && (z.completedByWorkerZone[z.zone] ?? 0) > 0 && z.workers.length === 2 && z.workers.every((w) => w.alive && w.dispatcherZone === z.zone),
        ),
      20_000,
    );
    const zones = zonesOf(flowing);
    for (const z of zones) {
      // Zone-aware routing: each zone's producer reached its own zone's dispatcher only.
      expect(Object.keys(z.acceptedByZone), `zone ${z.zone} accepted by`).toEqual([z.zone]);
    }
    console.log(
      'tasks flow in every zone: ' +
        zones
          .map((z) => `zone ${z.zone} first completion ${z.firstCompletedAtMs - launchedAtMs} ms after launch (${z.firstCompletedAtMs - z.firstSubmitAtMs} ms after its first submit), completed by worker zone ${JSON.stringify(z.completedByWorkerZone)}`)
          .join('; '),
    );
  }, 30_000);

  it("moves zone b's workers to another zone when zone b's dispatcher is killed, and tasks keep completing", async () => {
    const b = ready!.dispatchers.find((d) => d.zone === 'b')!;
    const bWorkers = ready!.workers.filter((w) => w.zone === 'b').map((w) => w.name);
    const from = events.length;
    // Taken before the signal: the workers may have moved by the time kill() returns.
    const killedAtMs = Date.now();
    process.kill(b.pid, 'SIGKILL');

    const moves = await Promise.all(
      bWorkers.map((name) =>
        waitFor(`${name} connected to another zone's dispatcher`, (e) => e['event'] === 'worker-connected' && e['worker'] === name && Number(e['atMs']) >= killedAtMs, 10_000, from),
      ),
    );
    for (const m of moves) expect(['a', 'c']).toContain(m['dispatcherZone']);
    const moveMs = Math.max(...moves.map((m) => Number(m['atMs']) - killedAtMs));
    const exitedEvent = await waitFor('dispatcher-b reported exited', (e) => e['event'] === 'process-exited' && e['name'] === 'dispatcher-b', 5_000, from);
    expect(exitedEvent['signal']).toBe('SIGKILL');

    // Tasks keep completing in every zone after the move: zone b's producer through a live zone's dispatcher, and zone b's workers on it.
    const atMove = zonesOf(await waitFor('zone-stats after the move', (e) => isStats(e) && Number(e['atMs']) >= killedAtMs + moveMs, 5_000, from));
    const byBWorkers = (zs: ZoneStats[]): number => zs.reduce((n, z) => n + (z.completedByWorkerZone['b'] ?? 0), 0);
    const acceptedAway = (zs: ZoneStats[]): number => Object.entries(zs.find((z) => z.zone === 'b')!.acceptedByZone).reduce((n, [zone, count]) => n + (zone === 'b' ? 0 : count), 0);
    const after = await waitFor(
      'tasks to keep completing in every zone after the kill',
      (e) => {
        if (!isStats(e)) return false;
        const zs = zonesOf(e);
        return zs.every((z, i) => z.completed >= atMove[i]!.completed + 10) && byBWorkers(zs) >= byBWorkers(atMove) + 5 && acceptedAway(zs) > 0;
      },
      20_000,
    );
    const zones = zonesOf(after);
    for (const w of zones.find((z) => z.zone === 'b')!.workers) expect(['a', 'c']).toContain(w.dispatcherZone);
    console.log(
      `kill -9 of zone b's dispatcher: its workers moved in ${moveMs} ms (to ${moves.map((m) => String(m['dispatcherZone'])).join(', ')}); ` +
        `${Number(after['atMs']) - killedAtMs} ms after the kill: ${zones.map((z) => `zone ${z.zone} ${z.completed} completed (accepted by ${JSON.stringify(z.acceptedByZone)})`).join('; ')}; ` +
        `zone b's workers completed ${byBWorkers(zones) - byBWorkers(atMove)} tasks since the move`,
    );
    expect(moveMs).toBeLessThan(WORKER_MOVE_BOUND_MS);
  }, 40_000);

  it('stops on SIGTERM: every process it started, exit 0, its schema dropped and its temp dir removed', async () => {
    const from = events.length;
    const stoppingAtMs = Date.now();
    demo!.kill('SIGTERM');
    const result = await exited!;
    const stopMs = Date.now() - stoppingAtMs;
    expect(result).toEqual({ code: 0, signal: null });
    const stopped = await waitFor('local-zones-stopped', (e) => e['event'] === 'local-zones-stopped', 1_000, from);
    expect(stopped['reason']).toBe('SIGTERM');
    expect(stopped['schemaDropped']).toBe(true);
    expect(await schemaExists(ready!.store.schema)).toBe(false);
    expect(existsSync(ready!.root)).toBe(false);
    const pids = [ready!.controlPlane.pid, ...ready!.dispatchers.map((d) => d.pid), ...ready!.workers.map((w) => w.pid), ...ready!.producers.map((p) => p.pid)];
    expect(pids.filter(isOurs)).toEqual([]);
    console.log(`SIGTERM: the run stopped, dropped schema ${ready!.store.schema} and exited 0 in ${stopMs} ms`);
  }, 45_000);
});
