/**
 * One end-to-end run with separate processes, as a user deploys them:
 * dispatcher(s) (`zonal serve` from the CLI), one producer and one worker per
 * dispatcher (the SDK, as an application), or the same shapes on BullMQ.
 * Both count a task when its completion is durable (Zonal: the dispatcher's
 * ACCEPTED ack; BullMQ: moved to completed in Redis). Used by `npm run bench`
 * (bench/suite) and `npm run bench:deployed` (e2e.ts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as net from 'node:net';
import * as path from 'node:path';
import { Client } from 'pg';
import { startChild, type Child } from './children';
import { epochMs } from './clock';

export interface RunShape {
  tasks: number;
  /** Closed loop: submits (or submitMany calls) outstanding per producer. */
  inFlight: number;
  slots: number;
  payloadBytes: number;
  /** Open loop at this many tasks/s per producer instead of the closed loop. */
  ratePerSec?: number;
  /** ProducerClient batch options ({ maxTasks: 1 }: one unary Submit per task). */
  batch?: Record<string, number>;
  /** Tasks per submitMany call. */
  submitMany?: number;
}

export interface Builds {
  cli: string;
  sdk: string;
  /** The dispatcher's admin port ('off' turns it off); on by default, as a user runs it. */
  adminAddress: string;
}

export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
}

export interface RunResult {
  scenario: string;
  tasks: number;
  /** Tasks completed per second, first submit to the last durable completion. */
  tasksPerSec: number;
  /** Durable submits acknowledged per second, as the producers saw them. */
  submitPerSec: number;
  start: Percentiles;
  completed: Percentiles;
  submitP50Ms: number;
  submitP99Ms: number;
  /** CPU seconds of the dispatcher processes (Redis for BullMQ is not counted: see redisCpuSeconds). */
  serverCpuSeconds: number;
  /** CPU seconds of Redis over the run, when it is a process of this bench (AOF peer). */
  redisCpuSeconds: number;
  /** CPU seconds of the producer and worker processes. */
  clientCpuSeconds: number;
  serverRssKiB: number;
}

interface Topology {
  servers: Child[];
  targets: string[];
  cleanup: () => Promise<void>;
}

const fixture = (name: string): string => path.join(__dirname, `${name}.js`);

/** ZONAL_BENCH_PROFILE=<dir>: every process of a run (dispatchers, producers, workers) writes a V8 CPU profile there. */
const profileFlags = (): string[] => {
  const dir = process.env['ZONAL_BENCH_PROFILE'];
  return dir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`];
};

async function zonalServers(builds: Builds, store: (i: number, dir: string) => string[], count: number): Promise<Topology> {
  const dirs = Array.from({ length: count }, () => mkdtempSync(path.join(tmpdir(), 'zonal-bench-')));
  const servers = dirs.map((dir, i) =>
    startChild(`dispatcher-${i}`, process.execPath, [
      ...profileFlags(),
      builds.cli,
      'serve',
      '--grpc-address',
      '127.0.0.1:0',
      '--admin-address',
      builds.adminAddress,
      '--xds-address',
      'off',
      '--log-level',
      'warn',
      '--data-dir',
      dir,
      ...store(i, dir),
    ]),
  );
  try {
    const listening = await Promise.all(servers.map((s) => s.next('listening', 60_000)));
    return {
      servers,
      targets: listening.map((e) => String(e['grpcAddress'])),
      cleanup: async () => {
        await Promise.all(servers.map((s) => s.stop()));
        for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Sums the latest `count` of every worker until they reach `total`; resolves with the last completion's stamp. */
async function counted(workers: Child[], total: number, timeoutMs = 600_000): Promise<number> {
  const started = epochMs();
  for (;;) {
    const counts = workers.map((w) => w.latest('count'));
    const sum = counts.reduce((s, c) => s + Number(c?.['completed'] ?? 0), 0);
    if (sum >= total) return Math.max(...counts.map((c) => Number(c?.['lastMs'] ?? 0)));
    for (const w of workers) if (w.process.exitCode !== null) throw new Error(`${w.name} exited early`);
    if (epochMs() - started > timeoutMs) throw new Error(`only ${sum} of ${total} tasks completed after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Latency percentiles of several workers, averaged weighted by how many tasks each measured. */
function weighted(reports: Record<string, unknown>[], key: 'start' | 'completedLatency'): Percentiles {
  const out: Percentiles = { p50: 0, p99: 0, p999: 0 };
  let n = 0;
  for (const r of reports) {
    const l = r[key] as Record<string, number>;
    if (!(l['n']! > 0)) continue;
    out.p50 += l['p50']! * l['n']!;
    out.p99 += l['p99']! * l['n']!;
    out.p999 += l['p999']! * l['n']!;
    n += l['n']!;
  }
  return { p50: out.p50 / n, p99: out.p99 / n, p999: out.p999 / n };
}

async function drive(
  scenario: string,
  shape: RunShape,
  topology: Topology,
  makeWorker: (i: number, target: string) => Child,
  makeProducer: (i: number, target: string, tasks: number) => Child,
  redis?: Child,
): Promise<RunResult> {
  const n = topology.targets.length;
  const perProducer = Math.floor(shape.tasks / n);
  const total = perProducer * n;
  const children: Child[] = [];
  try {
    const workers = topology.targets.map((t, i) => makeWorker(i, t));
    children.push(...workers);
    await Promise.all(workers.map((w) => w.next('ready', 60_000)));
    const producers = topology.targets.map((t, i) => makeProducer(i, t, perProducer));
    children.push(...producers);
    await Promise.all(producers.map((p) => p.next('ready', 60_000)));
    const cpuBefore = topology.servers.reduce((sum, s) => sum + s.cpuSeconds(), 0);
    const redisBefore = redis?.cpuSeconds() ?? 0;
    // Clients report their own CPU (a producer exits when done); what they used before `go` is not counted.
    const clientCpuBefore = [...workers, ...producers].reduce((sum, c) => sum + c.cpuSeconds(), 0);
    for (const w of workers) w.send('go');
    await Promise.all(workers.map((w) => w.next('going')));
    const t0 = epochMs();
    for (const p of producers) p.send('go');
    const lastMs = await counted(workers, total);
    const cpu = topology.servers.reduce((sum, s) => sum + s.cpuSeconds(), 0) - cpuBefore;
    const redisCpu = (redis?.cpuSeconds() ?? 0) - redisBefore;
    const rss = topology.servers.reduce((sum, s) => sum + s.rssKiB(), 0);
    const submitted = await Promise.all(producers.map((p) => p.next('done')));
    for (const w of workers) w.send('report');
    const reports = await Promise.all(workers.map((w) => w.next('report')));
    const clientCpu = [...submitted, ...reports].reduce((sum, e) => sum + Number(e['cpuSeconds']), 0) - clientCpuBefore;
    for (const w of workers) w.send('stop');
    const mean = (list: Record<string, unknown>[], key: string): number => list.reduce((s, e) => s + Number(e[key]), 0) / list.length;
    return {
      scenario,
      tasks: total,
      tasksPerSec: total / ((lastMs - t0) / 1000),
      submitPerSec: submitted.reduce((s, e) => s + Number(e['submitPerSec']), 0),
      start: weighted(reports, 'start'),
      completed: weighted(reports, 'completedLatency'),
      submitP50Ms: mean(submitted, 'submitP50Ms'),
      submitP99Ms: mean(submitted, 'submitP99Ms'),
      serverCpuSeconds: cpu,
      redisCpuSeconds: redisCpu,
      clientCpuSeconds: clientCpu,
      serverRssKiB: rss,
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await topology.cleanup();
  }
}

/** A Zonal run: `dispatchers` dispatcher processes started with the `store` flags. */
export async function zonalRun(scenario: string, shape: RunShape, builds: Builds, store: (i: number, dir: string) => string[], dispatchers = 1): Promise<RunResult> {
  const topology = await zonalServers(builds, store, dispatchers);
  const producerSettings = (target: string, tasks: number): Record<string, unknown> => ({
    sdk: builds.sdk,
    target,
    tasks,
    inFlight: shape.inFlight,
    payloadBytes: shape.payloadBytes,
    queue: 'default',
    ...(shape.ratePerSec !== undefined ? { ratePerSec: shape.ratePerSec / dispatchers } : {}),
    ...(shape.batch !== undefined ? { batch: shape.batch } : {}),
    ...(shape.submitMany !== undefined ? { submitMany: shape.submitMany } : {}),
  });
  return drive(
    scenario,
    shape,
    topology,
    (i, target) => startChild(`worker-${i}`, process.execPath, [...profileFlags(), fixture('zonal-worker'), JSON.stringify({ sdk: builds.sdk, target, slots: shape.slots, queue: 'default' })]),
    (i, target, tasks) => startChild(`producer-${i}`, process.execPath, [...profileFlags(), fixture('zonal-producer'), JSON.stringify(producerSettings(target, tasks))]),
  );
}

/** A BullMQ run on the Redis at `redisUrl` (`redis`: that Redis is this bench's own process, its CPU is reported). */
export async function bullmqRun(scenario: string, shape: RunShape, redisUrl: string, redis?: Child): Promise<RunResult> {
  const queue = `bench-${process.pid}-${Date.now()}`;
  const topology: Topology = { servers: [], targets: [''], cleanup: async () => undefined };
  return drive(
    scenario,
    shape,
    topology,
    (i) => startChild(`bullmq-worker-${i}`, process.execPath, [fixture('bullmq-worker'), JSON.stringify({ redisUrl, queue, slots: shape.slots })]),
    (i, _t, tasks) =>
      startChild(`bullmq-producer-${i}`, process.execPath, [
        fixture('bullmq-producer'),
        JSON.stringify({
          redisUrl,
          queue,
          tasks,
          inFlight: shape.inFlight,
          payloadBytes: shape.payloadBytes,
          ...(shape.ratePerSec !== undefined ? { ratePerSec: shape.ratePerSec } : {}),
          ...(shape.submitMany !== undefined ? { submitMany: shape.submitMany } : {}),
        }),
      ]),
    redis,
  );
}

/** A fresh schema for one PostgreSQL run, dropped once the run is over. */
export async function withPgSchema<T>(baseUrl: string, run: (url: string) => Promise<T>): Promise<T> {
  const schema = `zonal_bench_${Date.now()}_${process.pid}`;
  try {
    return await run(`${baseUrl}${baseUrl.includes('?') ? '&' : '?'}schema=${schema}`);
  } finally {
    const client = new Client({ connectionString: baseUrl });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => client.end());
  }
}

/** Whether PostgreSQL answers at `url` (the PostgreSQL variants are skipped, and say so, when it does not). */
export async function pgReachable(url: string): Promise<boolean> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A Redis of this bench's own, for the peer with persistence: AOF with
 * `appendfsync everysec` (BullMQ's durable setup), no RDB snapshots, data in a
 * temporary directory removed at `stop`.
 */
export async function privateRedis(): Promise<{ url: string; child: Child; stop: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'zonal-bench-redis-'));
  const port = await freePort();
  const child = startChild('redis-aof', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no']);
  const stop = async (): Promise<void> => {
    await child.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = epochMs() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const probe = spawn('redis-cli', ['-p', String(port), 'ping'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      probe.stdout.on('data', (d: Buffer) => (out += d.toString()));
      probe.on('exit', () => resolve(out.trim() === 'PONG'));
    });
    if (ok) break;
    if (epochMs() > deadline) {
      await stop();
      throw new Error('redis-server did not answer within 10 s');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `redis://127.0.0.1:${port}`, child, stop };
}
