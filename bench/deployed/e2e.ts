/**
 * `npm run bench:deployed`: the end-to-end pipeline (pipeline.ts) on the
 * store topologies of the ownership issue, PostgreSQL with three dispatchers
 * included, beside BullMQ in the same run. The suite (`npm run bench`) runs
 * the issue's scenarios; this keeps the topologies it does not.
 *
 *   node dist-bench/bench/deployed/e2e.js --scenarios bullmq,sqlite-normal,postgres-3 --runs 3
 *
 * Flags: --tasks N (20000), --in-flight N (64), --slots N (64), --payload-bytes N (100),
 * --runs N (3), --rate N (open loop at N/s instead of closed loop),
 * --cli FILE and --sdk FILE (another build of Zonal, to compare before and after),
 * --pg-url URL (ZONAL_PG_URL), --redis-url URL (redis://127.0.0.1:6379), --json FILE,
 * --admin-address ADDR ('off' turns the dispatcher's admin port off).
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { bullmqRun, withPgSchema, zonalRun, type Builds, type RunResult, type RunShape } from './pipeline';

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
    'admin-address': { type: 'string', default: '127.0.0.1:0' },
  },
});
const shape: RunShape = {
  tasks: Number(values.tasks),
  inFlight: Number(values['in-flight']),
  slots: Number(values.slots),
  payloadBytes: Number(values['payload-bytes']),
  ...(values.rate !== undefined ? { ratePerSec: Number(values.rate) } : {}),
  ...(process.env['ZONAL_BENCH_BATCH'] ? { batch: JSON.parse(process.env['ZONAL_BENCH_BATCH']) as Record<string, number> } : {}),
};
const builds: Builds = { cli: values.cli!, sdk: values.sdk!, adminAddress: values['admin-address']! };
const pgUrl = values['pg-url']!;

const SCENARIOS: Record<string, () => Promise<RunResult>> = {
  bullmq: () => bullmqRun('bullmq', shape, values['redis-url']!),
  'sqlite-normal': () => zonalRun('sqlite-normal', shape, builds, () => ['--sqlite-synchronous', 'NORMAL']),
  'sqlite-full': () => zonalRun('sqlite-full', shape, builds, () => ['--sqlite-synchronous', 'FULL']),
  postgres: () => withPgSchema(pgUrl, (url) => zonalRun('postgres', shape, builds, () => ['--store', url])),
  'postgres-3': () => withPgSchema(pgUrl, (url) => zonalRun('postgres-3', shape, builds, (i) => ['--store', url, '--zone', `zone-${i}`], 3)),
};

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const names = values.scenarios!.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of names) if (SCENARIOS[name] === undefined) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  const runs = Number(values.runs);
  const all: RunResult[] = [];
  // Interleaved: run 1 of every scenario, then run 2, ... so drift on the machine hits them alike.
  for (let r = 0; r < runs; r++) {
    for (const name of names) {
      const result = await SCENARIOS[name]!();
      all.push(result);
      console.error(`run ${r + 1}/${runs} ${name}: ${Math.round(result.tasksPerSec)} tasks/s, start p50 ${result.start.p50.toFixed(2)} ms p99 ${result.start.p99.toFixed(2)} ms`);
    }
  }
  const peer = all.filter((r) => r.scenario === 'bullmq').map((r) => r.tasksPerSec);
  const peerMedian = peer.length > 0 ? median(peer) : Number.NaN;
  console.log(`\n${shape.tasks} tasks of ${shape.payloadBytes} B, ${shape.inFlight} in flight per producer, ${shape.slots} slots per worker, ${shape.ratePerSec === undefined ? 'closed loop' : `open loop at ${shape.ratePerSec}/s`}; median of ${runs} runs; node ${process.version}`);
  console.log('| scenario | tasks/s (completed) | vs BullMQ | start p50 ms | start p99 ms | completed p50 ms | submit p50 ms | server CPU s | client CPU s | server RSS MiB |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const name of names) {
    const rows = all.filter((r) => r.scenario === name);
    const m = (pick: (r: RunResult) => number): number => median(rows.map(pick));
    const tps = m((r) => r.tasksPerSec);
    console.log(
      `| ${name} | ${Math.round(tps)} | ${(tps / peerMedian).toFixed(2)}x | ${m((r) => r.start.p50).toFixed(2)} | ${m((r) => r.start.p99).toFixed(2)} | ${m((r) => r.completed.p50).toFixed(2)} | ${m((r) => r.submitP50Ms).toFixed(2)} | ${m((r) => r.serverCpuSeconds).toFixed(2)} | ${m((r) => r.clientCpuSeconds).toFixed(2)} | ${(m((r) => r.serverRssKiB) / 1024).toFixed(0)} |`,
    );
  }
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ shape, runs: all }, null, 2));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
