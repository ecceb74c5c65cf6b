/**
 * The end-to-end scenarios of `npm run bench`: `throughput`, `latency` and
 * `peer-bullmq`. Every Zonal run is a dispatcher process, a producer process
 * and a worker process (bench/deployed/pipeline.ts); every figure is beside
 * BullMQ's for the same workload, measured in the same invocation, with runs
 * interleaved (run 1 of every variant, then run 2 ...) so drift on the
 * machine hits them alike.
 */
import { bullmqRun, pgReachable, privateRedis, withPgSchema, zonalRun, type Builds, type RunResult, type RunShape } from '../deployed/pipeline';
import { rawUnary } from './baseline-grpc';
import { check, type Figure, type Scenario, type ScenarioReport, type SuiteOptions, type TargetCheck } from './report';

const PAYLOAD_BYTES = 100;
const IN_FLIGHT = 64;
const SLOTS = 64;

interface Variant {
  name: string;
  text: string;
  shape: (tasks: number) => RunShape;
  run: (shape: RunShape, o: SuiteOptions) => Promise<RunResult>;
  /** Skipped (with this reason) when it returns a string. */
  skip?: (o: SuiteOptions) => Promise<string | undefined>;
}

const closed = (tasks: number): RunShape => ({ tasks, inFlight: IN_FLIGHT, slots: SLOTS, payloadBytes: PAYLOAD_BYTES });
const builds = (o: SuiteOptions): Builds => ({ cli: o.cli, sdk: o.sdk, adminAddress: '127.0.0.1:0' });
const sqlite = (synchronous: 'NORMAL' | 'FULL') => (): string[] => ['--sqlite-synchronous', synchronous];
const pgSkip = async (o: SuiteOptions): Promise<string | undefined> => ((await pgReachable(o.pgUrl)) ? undefined : `PostgreSQL does not answer at ${o.pgUrl}`);

/** BullMQ on a Redis without persistence (the machine's own, save "" and appendonly no) and with AOF everysec (a Redis of this bench's own). */
const bullmqVariants = (prefix: string, shape: (tasks: number) => RunShape): Variant[] => [
  { name: `${prefix}bullmq`, text: 'BullMQ, Redis without persistence', shape, run: (s, o) => bullmqRun('bullmq', s, o.redisUrl) },
  {
    name: `${prefix}bullmq-aof`,
    text: 'BullMQ, Redis AOF everysec',
    shape,
    run: async (s) => {
      const redis = await privateRedis();
      try {
        return await bullmqRun('bullmq-aof', s, redis.url, redis.child);
      } finally {
        await redis.stop();
      }
    },
  },
];

const THROUGHPUT: Variant[] = [
  { name: 'sdk-normal', text: 'SDK, 64 in flight (coalescing on), SQLite NORMAL', shape: closed, run: (s, o) => zonalRun('sdk-normal', s, builds(o), sqlite('NORMAL')) },
  { name: 'sdk-full', text: 'SDK, 64 in flight (coalescing on), SQLite FULL', shape: closed, run: (s, o) => zonalRun('sdk-full', s, builds(o), sqlite('FULL')) },
  {
    name: 'unary-normal',
    text: 'unary Submit only (coalescing off), 64 in flight, SQLite NORMAL',
    shape: (tasks) => ({ ...closed(tasks), batch: { maxTasks: 1 } }),
    run: (s, o) => zonalRun('unary-normal', s, builds(o), sqlite('NORMAL')),
  },
  {
    name: 'bulk-normal',
    text: 'submitMany of 1,000, 2 calls in flight, SQLite NORMAL',
    shape: (tasks) => ({ ...closed(tasks), inFlight: 2, submitMany: 1000 }),
    run: (s, o) => zonalRun('bulk-normal', s, builds(o), sqlite('NORMAL')),
  },
  {
    name: 'postgres',
    text: 'SDK, 64 in flight, PostgreSQL (one dispatcher)',
    shape: closed,
    skip: pgSkip,
    run: (s, o) => withPgSchema(o.pgUrl, (url) => zonalRun('postgres', s, builds(o), () => ['--store', url])),
  },
  ...bullmqVariants('', closed),
  ...bullmqVariants('bulk-', (tasks) => ({ ...closed(tasks), inFlight: 2, submitMany: 1000 })),
];

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** The median run (by tasks/s) of each variant. */
type Medians = Map<string, RunResult>;

async function runVariants(variants: Variant[], tasks: number, runs: number, o: SuiteOptions, notes: string[]): Promise<Medians> {
  const results = new Map<string, RunResult[]>();
  const active: Variant[] = [];
  for (const v of variants) {
    const why = await v.skip?.(o);
    if (why !== undefined) notes.push(`${v.name} skipped: ${why}`);
    else active.push(v);
  }
  for (let r = 0; r < runs; r++) {
    for (const v of active) {
      const result = await v.run(v.shape(tasks), o);
      results.set(v.name, [...(results.get(v.name) ?? []), result]);
      console.error(`  run ${r + 1}/${runs} ${v.name}: ${Math.round(result.tasksPerSec)} tasks/s, start p50 ${result.start.p50.toFixed(2)} ms p99 ${result.start.p99.toFixed(2)} ms`);
    }
  }
  const medians: Medians = new Map();
  for (const [name, list] of results) {
    const m = median(list.map((r) => r.tasksPerSec));
    medians.set(name, list.find((r) => r.tasksPerSec === m)!);
  }
  return medians;
}

const perTaskUs = (seconds: number, tasks: number): number => (seconds / tasks) * 1e6;

function throughputFigures(medians: Medians, variants: Variant[]): Figure[] {
  const peer = medians.get('bullmq');
  const bulkPeer = medians.get('bulk-bullmq');
  const figures: Figure[] = [];
  for (const v of variants) {
    const r = medians.get(v.name);
    if (r === undefined) continue;
    const versus = v.name.startsWith('bulk-') || v.name === 'bullmq' ? (v.name === 'bulk-normal' ? bulkPeer : undefined) : peer;
    figures.push({
      name: `${v.text}: tasks/s end to end`,
      value: r.tasksPerSec,
      unit: 'tasks/s',
      ...(versus !== undefined ? { versus: { name: v.name === 'bulk-normal' ? 'BullMQ addBulk of 1,000, no persistence' : 'BullMQ, no persistence', value: versus.tasksPerSec } } : {}),
    });
    figures.push({
      name: `${v.text}: CPU per task (server${r.redisCpuSeconds > 0 ? ' = Redis' : ''} / producer + worker)`,
      value: perTaskUs(r.serverCpuSeconds + r.redisCpuSeconds, r.tasks),
      unit: `µs / ${perTaskUs(r.clientCpuSeconds, r.tasks).toFixed(0)} µs`,
    });
  }
  return figures;
}

/** Shared results: the peer's runs and the measured maximum are reused by `latency` and `peer-bullmq` in the same invocation. */
function shared<T>(o: SuiteOptions, key: string): T | undefined {
  return o.shared?.get(key) as T | undefined;
}

export const throughput: Scenario = async (o) => {
  const tasks = o.quick ? 3_000 : 20_000;
  const runs = o.quick ? 1 : 3;
  const notes = [`${tasks} tasks of ${PAYLOAD_BYTES} B per run, no-op handler, one producer and one worker process (${SLOTS} slots); median of ${runs} run(s), interleaved; CPU of Redis counted only for the AOF peer (its own process)`];
  const medians = await runVariants(THROUGHPUT, tasks, runs, o, notes);
  o.shared?.set('throughput', medians);
  const tps = (name: string): number => medians.get(name)?.tasksPerSec ?? Number.NaN;
  const targets: TargetCheck[] = [
    check('1a', 'tasks/s, 64 in flight, SQLite NORMAL, vs BullMQ without persistence', tps('sdk-normal') / tps('bullmq'), '>=', 1.5, 'x'),
    check('1b', 'tasks/s, 64 in flight, SQLite FULL, vs BullMQ without persistence', tps('sdk-full') / tps('bullmq'), '>=', 1, 'x'),
  ];
  // Target 2: the unary variant's durable submits beside raw grpc-js unary calls of the same bytes, measured right after it.
  const unary = medians.get('unary-normal')!;
  const raw = await rawUnary(o, { calls: tasks, inFlight: IN_FLIGHT, payloadBytes: PAYLOAD_BYTES });
  targets.push(check('2', 'durable unary Submits/s (coalescing off, 64 in flight) vs raw grpc-js unary calls/s', unary.submitPerSec / raw.callsPerSec, '>=', 0.85, 'x'));
  const figures = throughputFigures(medians, THROUGHPUT);
  figures.push({ name: 'unary Submit only, 64 in flight, SQLite NORMAL: durable submits/s', value: unary.submitPerSec, unit: 'submits/s', versus: { name: 'raw grpc-js unary calls/s (separate processes, same bytes)', value: raw.callsPerSec } });
  return { scenario: 'throughput', figures, targets, notes };
};

/** Open loop at `rate` tasks/s for `seconds`: Zonal (SQLite NORMAL, SDK) and BullMQ (no persistence), interleaved. */
async function atRate(rate: number, seconds: number, o: SuiteOptions): Promise<{ zonal: RunResult; bullmq: RunResult }> {
  const shape: RunShape = { ...closed(Math.round(rate * seconds)), ratePerSec: rate };
  const zonal = await zonalRun(`zonal@${rate}`, shape, builds(o), sqlite('NORMAL'));
  const bullmq = await bullmqRun(`bullmq@${rate}`, shape, o.redisUrl);
  console.error(`  ${rate}/s: zonal start p50 ${zonal.start.p50.toFixed(2)} p99 ${zonal.start.p99.toFixed(2)} ms; bullmq p50 ${bullmq.start.p50.toFixed(2)} p99 ${bullmq.start.p99.toFixed(2)} ms`);
  return { zonal, bullmq };
}

export const latency: Scenario = async (o) => {
  const seconds = o.quick ? 3 : 10;
  const notes: string[] = [`open loop (each submit due at t0 + i/rate; latency counted from when it was due), ${seconds} s per rate, SQLite NORMAL, SDK coalescing on; BullMQ without persistence`];
  let max = shared<Medians>(o, 'throughput')?.get('sdk-normal')?.tasksPerSec;
  if (max === undefined) {
    const probe = await zonalRun('max-probe', closed(o.quick ? 3_000 : 20_000), builds(o), sqlite('NORMAL'));
    max = probe.tasksPerSec;
    notes.push(`maximum measured here (throughput not in this run): ${Math.round(max)} tasks/s`);
  }
  const half = Math.round(max / 2);
  const rates = [500, 1000, half];
  const figures: Figure[] = [];
  const targets: TargetCheck[] = [];
  const byRate = new Map<number, { zonal: RunResult; bullmq: RunResult }>();
  for (const rate of rates) {
    const pair = await atRate(rate, seconds, o);
    byRate.set(rate, pair);
    const label = rate === half ? `${rate}/s (50% of the measured maximum)` : `${rate}/s`;
    for (const [what, key] of [
      ['submit -> start', 'start'],
      ['submit -> completed', 'completed'],
    ] as const) {
      for (const q of ['p50', 'p99', 'p999'] as const) {
        figures.push({ name: `${label}: ${what} ${q}`, value: pair.zonal[key][q], unit: 'ms', versus: { name: 'BullMQ', value: pair.bullmq[key][q] } });
      }
    }
    if (rate === 500 || rate === 1000) {
      const id = rate === 500 ? '3a' : '3b';
      targets.push(check(`${id}-p99`, `submit -> start p99 at ${rate}/s vs BullMQ's`, pair.zonal.start.p99 / pair.bullmq.start.p99, '<=', 1, 'x'));
      targets.push(check(`${id}-p50`, `submit -> start p50 at ${rate}/s vs BullMQ's`, pair.zonal.start.p50 / pair.bullmq.start.p50, '<=', 2, 'x'));
    }
  }
  o.shared?.set('latency', byRate);
  return { scenario: 'latency', figures, targets, notes };
};

/**
 * BullMQ's own figures for the same workloads, without persistence and with
 * AOF everysec: from the throughput and latency runs of this invocation when
 * they ran, else measured here.
 */
export const peerBullmq: Scenario = async (o) => {
  const notes: string[] = ['BullMQ 6 (the lockfile version) on Redis 7: the same closed-loop and bulk shapes as throughput; AOF everysec is a Redis of this bench\'s own with appendfsync everysec'];
  let medians = shared<Medians>(o, 'throughput');
  if (medians === undefined) {
    medians = await runVariants(
      THROUGHPUT.filter((v) => v.name.includes('bullmq')),
      o.quick ? 3_000 : 20_000,
      o.quick ? 1 : 3,
      o,
      notes,
    );
  } else notes.push('runs shared with the throughput scenario of this invocation');
  const figures: Figure[] = [];
  const none = medians.get('bullmq');
  const aof = medians.get('bullmq-aof');
  if (none !== undefined && aof !== undefined) {
    figures.push({ name: 'add, 64 in flight: jobs/s end to end, AOF everysec', value: aof.tasksPerSec, unit: 'jobs/s', versus: { name: 'no persistence', value: none.tasksPerSec } });
    figures.push({ name: 'add, 64 in flight: add p50, AOF everysec', value: aof.submitP50Ms, unit: 'ms', versus: { name: 'no persistence', value: none.submitP50Ms } });
    figures.push({ name: 'add, 64 in flight: Redis CPU per job, AOF everysec', value: perTaskUs(aof.redisCpuSeconds, aof.tasks), unit: 'µs' });
    figures.push({ name: 'add, 64 in flight: producer + worker CPU per job, no persistence', value: perTaskUs(none.clientCpuSeconds, none.tasks), unit: 'µs' });
  }
  const bulkNone = medians.get('bulk-bullmq');
  const bulkAof = medians.get('bulk-bullmq-aof');
  if (bulkNone !== undefined && bulkAof !== undefined) {
    figures.push({ name: 'addBulk of 1,000: jobs/s end to end, AOF everysec', value: bulkAof.tasksPerSec, unit: 'jobs/s', versus: { name: 'no persistence', value: bulkNone.tasksPerSec } });
  }
  const byRate = shared<Map<number, { bullmq: RunResult }>>(o, 'latency');
  if (byRate !== undefined) {
    for (const [rate, pair] of byRate) figures.push({ name: `${rate}/s: add -> start p50 / p99`, value: pair.bullmq.start.p50, unit: `ms / ${pair.bullmq.start.p99.toFixed(2)} ms` });
  } else notes.push('latency not in this run: BullMQ at fixed rates is measured by the latency scenario');
  return { scenario: 'peer-bullmq', figures, targets: [], notes } satisfies ScenarioReport;
};
