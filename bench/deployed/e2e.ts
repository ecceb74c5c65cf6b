/**
 * End-to-end throughput and submit -> start latency with separate processes
 * for the dispatcher(s), the producer(s) and the worker(s), as a user deploys
 * them, next to BullMQ on the local Redis in the same run.
 *
 *   node dist-bench/bench/deployed/e2e.js --scenarios bullmq,sqlite-normal,postgres --runs 3
 *
 * Flags: --tasks N (20000), --in-flight N (64), --slots N (64), --payload-bytes N (100),
 * --runs N (3), --rate N (open loop at N/s instead of closed loop),
 * --cli FILE and --sdk FILE (another build of Zonal, to compare before and after),
 * --pg-url URL (ZONAL_PG_URL), --redis-url URL (redis://127.0.0.1:6379), --json FILE.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'pg';
import { startChild, type Child } from './children';
import { epochMs } from './clock';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const { values } = parseArgs({
  options: {
    scenarios: { type: 'string', default: 'bullmq,sqlite-normal' },
    tasks: { type: 'string', default: '20000' },
    'in-flight': { type: 'string', default: '64' },
    slots: { type: 'string', default: '64' },
    'payload-bytes': { type: 'string', default: '100' },
    runs: { type: 'string', default: '3' },
    rate: { type: 'string' },
    cli: { type: 'string', default: path.join(ROOT, 'dist', 'cli', 'main.js') },
    sdk: { type: 'string', default: path.join(ROOT, 'dist', 'index.js') },
    'pg-url': { type: 'string', default: process.env['ZONAL_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
    json: { type: 'string' },
    // The dispatcher's admin port (metrics, heatmap) is on by default, as a user runs it; 'off' turns it off.
    'admin-address': { type: 'string', default: '127.0.0.1:0' },
    // Traces on: every process exports spans over OTLP/HTTP to a sink in this process.
    tracing: { type: 'boolean', default: false },
  },
});
const TASKS = Number(values.tasks);
const IN_FLIGHT = Number(values['in-flight']);
const SLOTS = Number(values.slots);
const PAYLOAD_BYTES = Number(values['payload-bytes']);
const RATE = values.rate === undefined ? undefined : Number(values.rate);
const fixture = (name: string): string => path.join(__dirname, `${name}.js`);

interface RunResult {
  scenario: string;
  tasksPerSec: number;
  startP50Ms: number;
  startP99Ms: number;
  startP999Ms: number;
  submitP50Ms: number;
  submitP99Ms: number;
  /** CPU seconds of the dispatcher processes (Redis for BullMQ is not counted). */
  serverCpuSeconds: number;
  /** CPU seconds of the producer and worker processes. */
  clientCpuSeconds: number;
  serverRssKiB: number;
}

/** One topology: dispatchers (or none), and one worker + one producer per dispatcher. */
interface Topology {
  servers: Child[];
  targets: string[];
  cleanup: () => Promise<void>;
}

async function zonalServers(store: (i: number, dir: string) => string[], count: number): Promise<Topology> {
  const dirs = Array.from({ length: count }, () => mkdtempSync(path.join(tmpdir(), 'zonal-bench-')));
  // ZONAL_BENCH_PROFILE=<dir>: each dispatcher writes a V8 CPU profile there (node --cpu-prof).
  const profile = process.env['ZONAL_BENCH_PROFILE'];
  const servers = dirs.map((dir, i) =>
    startChild(`dispatcher-${i}`, process.execPath, [
      ...(profile !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : []),
      values.cli!,
      'serve',
      '--grpc-address',
      '127.0.0.1:0',
      '--admin-address',
      values['admin-address']!,
      '--xds-address',
      'off',
      '--log-level',
      'warn',
      '--data-dir',
      dir,
      ...store(i, dir),
    ]),
  );
  const listening = await Promise.all(servers.map((s) => s.next('listening', 60_000)));
  return {
    servers,
    targets: listening.map((e) => String(e['grpcAddress'])),
    cleanup: async () => {
      await Promise.all(servers.map((s) => s.stop()));
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sums the latest `count` of every worker until they reach `total`; resolves with the last start's stamp. */
async function counted(workers: Child[], total: number, timeoutMs = 600_000): Promise<number> {
  const started = epochMs();
  for (;;) {
    const counts = workers.map((w) => w.latest('count'));
    const sum = counts.reduce((s, c) => s + Number(c?.['started'] ?? 0), 0);
    if (sum >= total) return Math.max(...counts.map((c) => Number(c?.['lastMs'] ?? 0)));
    for (const w of workers) if (w.process.exitCode !== null) throw new Error(`${w.name} exited early`);
    if (epochMs() - started > timeoutMs) throw new Error(`only ${sum} of ${total} tasks counted after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function drive(scenario: string, topology: Topology, makeWorker: (i: number, target: string) => Child, makeProducer: (i: number, target: string, tasks: number) => Child): Promise<RunResult> {
  const n = topology.targets.length;
  const perProducer = Math.floor(TASKS / n);
  const total = perProducer * n;
  const workers = topology.targets.map((t, i) => makeWorker(i, t));
  await Promise.all(workers.map((w) => w.next('ready', 60_000)));
  const producers = topology.targets.map((t, i) => makeProducer(i, t, perProducer));
  await Promise.all(producers.map((p) => p.next('ready', 60_000)));
  const cpuBefore = topology.servers.reduce((sum, s) => sum + s.cpuSeconds(), 0);
  // Clients report their own CPU (a producer exits when done); what they used before `go` is not counted.
  const clientCpuBefore = [...workers, ...producers].reduce((sum, c) => sum + c.cpuSeconds(), 0);
  for (const w of workers) w.send('go');
  await Promise.all(workers.map((w) => w.next('going')));
  const t0 = epochMs();
  for (const p of producers) p.send('go');
  const lastMs = await counted(workers, total);
  const cpu = topology.servers.reduce((sum, s) => sum + s.cpuSeconds(), 0) - cpuBefore;
  const rss = topology.servers.reduce((sum, s) => sum + s.rssKiB(), 0);
  const submitted = await Promise.all(producers.map((p) => p.next('done')));
  for (const w of workers) w.send('report');
  const reports = await Promise.all(workers.map((w) => w.next('report')));
  const clientCpu = [...submitted, ...reports].reduce((sum, e) => sum + Number(e['cpuSeconds']), 0) - clientCpuBefore;
  for (const w of workers) w.send('stop');
  await Promise.all([...workers, ...producers].map((c) => c.stop()));
  await topology.cleanup();
  const mean = (list: Record<string, unknown>[], key: string): number => list.reduce((s, e) => s + Number(e[key]), 0) / list.length;
  // Latency percentiles of several workers are averaged, weighted by how many tasks each started.
  const weighted = (key: string): number => {
    let sum = 0;
    let n = 0;
    for (const r of reports) {
      const l = r['latencies'] as Record<string, number>;
      if (!(l['n']! > 0)) continue;
      sum += l[key]! * l['n']!;
      n += l['n']!;
    }
    return sum / n;
  };
  return {
    scenario,
    tasksPerSec: total / ((lastMs - t0) / 1000),
    startP50Ms: weighted('p50'),
    startP99Ms: weighted('p99'),
    startP999Ms: weighted('p999'),
    submitP50Ms: mean(submitted, 'submitP50Ms'),
    submitP99Ms: mean(submitted, 'submitP99Ms'),
    serverCpuSeconds: cpu,
    clientCpuSeconds: clientCpu,
    serverRssKiB: rss,
  };
}

function zonalWorker(i: number, target: string, queue = 'default'): Child {
  return startChild(`worker-${i}`, process.execPath, [fixture('zonal-worker'), JSON.stringify({ sdk: values.sdk, target, slots: SLOTS, queue })]);
}

function zonalProducer(i: number, target: string, tasks: number, queue = 'default'): Child {
  return startChild(`producer-${i}`, process.execPath, [
    fixture('zonal-producer'),
    JSON.stringify({ sdk: values.sdk, target, tasks, inFlight: IN_FLIGHT, payloadBytes: PAYLOAD_BYTES, queue, ...(RATE !== undefined ? { ratePerSec: RATE } : {}) }),
  ]);
}

async function zonalScenario(scenario: string, store: (i: number, dir: string) => string[], dispatchers: number): Promise<RunResult> {
  const topology = await zonalServers(store, dispatchers);
  return drive(scenario, topology, (i, t) => zonalWorker(i, t), (i, t, tasks) => zonalProducer(i, t, tasks));
}

async function bullmqScenario(): Promise<RunResult> {
  const queue = `bench-${process.pid}-${Date.now()}`;
  const topology: Topology = { servers: [], targets: [''], cleanup: async () => undefined };
  return drive(
    'bullmq',
    topology,
    (i) => startChild(`bullmq-worker-${i}`, process.execPath, [fixture('bullmq-worker'), JSON.stringify({ redisUrl: values['redis-url'], queue, slots: SLOTS })]),
    (i, _t, tasks) =>
      startChild(`bullmq-producer-${i}`, process.execPath, [
        fixture('bullmq-producer'),
        JSON.stringify({ redisUrl: values['redis-url'], queue, tasks, inFlight: IN_FLIGHT, payloadBytes: PAYLOAD_BYTES, ...(RATE !== undefined ? { ratePerSec: RATE } : {}) }),
      ]),
  );
}

/** A fresh schema for one PostgreSQL run, dropped once the run is over. */
async function withPgSchema(run: (url: string) => Promise<RunResult>): Promise<RunResult> {
  const schema = `zonal_bench_${Date.now()}_${process.pid}`;
  const base = values['pg-url']!;
  try {
    return await run(`${base}${base.includes('?') ? '&' : '?'}schema=${schema}`);
  } finally {
    const client = new Client({ connectionString: base });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => client.end());
  }
}

const SCENARIOS: Record<string, () => Promise<RunResult>> = {
  bullmq: bullmqScenario,
  'sqlite-normal': () => zonalScenario('sqlite-normal', () => ['--sqlite-synchronous', 'NORMAL'], 1),
  'sqlite-full': () => zonalScenario('sqlite-full', () => ['--sqlite-synchronous', 'FULL'], 1),
  postgres: () => withPgSchema((url) => zonalScenario('postgres', () => ['--store', url], 1)),
  'postgres-3': () => withPgSchema((url) => zonalScenario('postgres-3', (i) => ['--store', url, '--zone', `zone-${i}`], 3)),
};

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * --tracing: an OTLP/HTTP sink in this process that takes every export and
 * counts its bytes; the children (dispatchers, producers, workers) inherit
 * the OTEL_* variables that point at it.
 */
async function startTraceSink(): Promise<{ bytes: () => number; close: () => Promise<void> }> {
  let bytes = 0;
  const server = http.createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.env['OTEL_TRACES_EXPORTER'] = 'otlp';
  process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  process.env['OTEL_METRICS_EXPORTER'] = 'none';
  process.env['OTEL_LOGS_EXPORTER'] = 'none';
  return { bytes: () => bytes, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function main(): Promise<void> {
  const names = values.scenarios!.split(',').map((s) => s.trim()).filter(Boolean);
  const sink = values.tracing === true ? await startTraceSink() : undefined;
  for (const name of names) if (SCENARIOS[name] === undefined) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  const runs = Number(values.runs);
  const all: RunResult[] = [];
  // Interleaved: run 1 of every scenario, then run 2, ... so drift on the machine hits them alike.
  for (let r = 0; r < runs; r++) {
    for (const name of names) {
      const result = await SCENARIOS[name]!();
      all.push(result);
      console.error(`run ${r + 1}/${runs} ${name}: ${Math.round(result.tasksPerSec)} tasks/s, start p50 ${result.startP50Ms.toFixed(2)} ms p99 ${result.startP99Ms.toFixed(2)} ms`);
    }
  }
  const peer = all.filter((r) => r.scenario === 'bullmq').map((r) => r.tasksPerSec);
  const peerMedian = peer.length > 0 ? median(peer) : Number.NaN;
  console.log(`\n${TASKS} tasks of ${PAYLOAD_BYTES} B, ${IN_FLIGHT} in flight per producer, ${SLOTS} slots per worker, ${RATE === undefined ? 'closed loop' : `open loop at ${RATE}/s`}; median of ${runs} runs; node ${process.version}`);
  console.log('| scenario | tasks/s | vs BullMQ | start p50 ms | start p99 ms | submit p50 ms | server CPU s | client CPU s | server RSS MiB |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const name of names) {
    const rows = all.filter((r) => r.scenario === name);
    const m = (key: keyof RunResult): number => median(rows.map((r) => r[key] as number));
    const tps = m('tasksPerSec');
    console.log(
      `| ${name} | ${Math.round(tps)} | ${(tps / peerMedian).toFixed(2)}x | ${m('startP50Ms').toFixed(2)} | ${m('startP99Ms').toFixed(2)} | ${m('submitP50Ms').toFixed(2)} | ${m('serverCpuSeconds').toFixed(2)} | ${m('clientCpuSeconds').toFixed(2)} | ${(m('serverRssKiB') / 1024).toFixed(0)} |`,
    );
  }
  if (sink !== undefined) {
    console.log(`tracing on: ${(sink.bytes() / 1024 / 1024).toFixed(1)} MiB of OTLP spans exported`);
    await sink.close();
  }
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ tasks: TASKS, inFlight: IN_FLIGHT, slots: SLOTS, rate: RATE ?? null, runs: all }, null, 2));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
