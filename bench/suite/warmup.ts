/**
 * `warmup`: the first call of a client process that has just started,
 * against the steady p50 of the same process, everything in separate
 * processes (`zonal serve` from the CLI, SQLite NORMAL; producers and
 * workers on the SDK, as an application runs them).
 *
 *  1. A dispatcher starts; a first producer process (against the fresh
 *     dispatcher: reported apart, it includes the dispatcher's own cold
 *     start) warms the dispatcher and stays up as the warm producer of 3.
 *  2. N fresh producer processes, one after the other: each awaits
 *     `ready()`, times its first `submit` awaited alone, then `steady`
 *     submits one at a time -> steady p50. Ratio first / steady; median of N.
 *  3. N fresh worker processes, each on a queue of its own: once welcomed,
 *     the warm producer submits one task (first submit -> start), then
 *     `steady` one at a time -> steady p50 of submit -> start. Median of N.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startChild, type Child } from '../deployed/children';
import { benchFile, check, type Figure, type Scenario, type ScenarioReport, type SuiteOptions } from './report';

const log = (line: string): void => void process.stderr.write(`[suite:warmup] ${line}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const PAYLOAD_BYTES = 100;

interface ProducerRun {
  requireMs: number;
  readyMs: number;
  firstMs: number;
  secondMs: number;
  steadyP50Ms: number;
  ratio: number;
}

async function startDispatcher(options: SuiteOptions, dataDir: string): Promise<{ server: Child; target: string }> {
  const profileDir = process.env['ZONAL_BENCH_PROFILE'];
  const server = startChild('dispatcher', process.execPath, [
    ...(profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    options.cli,
    'serve',
    '--grpc-address',
    '127.0.0.1:0',
    '--admin-address',
    'off',
    '--xds-address',
    'off',
    '--log-level',
    'warn',
    '--data-dir',
    dataDir,
    '--sqlite-synchronous',
    'NORMAL',
  ]);
  const listening = await server.next('listening', 60_000);
  return { server, target: String(listening['grpcAddress']) };
}

function startProducer(options: SuiteOptions, name: string, target: string, steady: number): Child {
  // ZONAL_BENCH_PROFILE=<dir>: every process writes a V8 CPU profile there (node --cpu-prof).
  const profileDir = process.env['ZONAL_BENCH_PROFILE'];
  return startChild(name, process.execPath, [
    ...(profileDir !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    benchFile(options, 'suite/fixtures/warmup-producer.js'),
    JSON.stringify({ sdk: options.sdk, target, steady, payloadBytes: PAYLOAD_BYTES, queue: `warmup-${name}` }),
  ]);
}

function producerRun(e: Record<string, unknown>): ProducerRun {
  const n = (k: string): number => Number(e[k]);
  return { requireMs: n('requireMs'), readyMs: n('readyMs'), firstMs: n('firstMs'), secondMs: n('secondMs'), steadyP50Ms: n('steadyP50Ms'), ratio: n('firstMs') / n('steadyP50Ms') };
}

const fmt = (r: { firstMs: number; steadyP50Ms: number; ratio: number }): string => `${r.firstMs.toFixed(1)}/${r.steadyP50Ms.toFixed(2)} ms = ${r.ratio.toFixed(1)}x`;

export const warmup: Scenario = async (options): Promise<ScenarioReport> => {
  const runs = options.quick ? 3 : 5;
  const steady = 200;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-suite-warmup-'));
  const { server, target } = await startDispatcher(options, dataDir);
  let warm: Child | undefined;
  try {
    // 1. The first producer of a fresh dispatcher; kept as the warm producer of the worker runs.
    warm = startProducer(options, 'producer-0', target, steady);
    const cold = producerRun(await warm.next('result', 60_000));
    log(`producer against a fresh dispatcher: first/steady ${fmt(cold)}`);

    // 2. Fresh producer processes against the warm dispatcher.
    const producers: ProducerRun[] = [];
    for (let i = 1; i <= runs; i++) {
      const p = startProducer(options, `producer-${i}`, target, steady);
      const r = producerRun(await p.next('result', 60_000));
      p.send('stop');
      await p.stop();
      producers.push(r);
      log(`fresh producer ${i}: ready ${r.readyMs.toFixed(1)} ms, first/steady ${fmt(r)}, second ${r.secondMs.toFixed(1)} ms`);
    }

    // 3. Fresh worker processes; the tasks come from the warm producer.
    const workers: { firstMs: number; steadyP50Ms: number; ratio: number; startMs: number }[] = [];
    for (let i = 1; i <= runs; i++) {
      const queue = `warmup-worker-${i}`;
      const w = startChild(`worker-${i}`, process.execPath, [benchFile(options, 'suite/fixtures/warmup-worker.js'), JSON.stringify({ sdk: options.sdk, target, queue, tasks: steady + 1 })]);
      const ready = await w.next('ready', 60_000);
      warm.send(`submit ${queue} 1`);
      await w.next('first', 30_000);
      await warm.next('submitted', 30_000);
      warm.send(`submit ${queue} ${steady}`);
      const result = await w.next('result', 120_000);
      await warm.next('submitted', 30_000);
      w.send('stop');
      await w.stop();
      const r = { firstMs: Number(result['firstMs']), steadyP50Ms: Number(result['steadyP50Ms']), ratio: Number(result['firstMs']) / Number(result['steadyP50Ms']), startMs: Number(ready['startMs']) };
      workers.push(r);
      log(`fresh worker ${i}: start() ${r.startMs.toFixed(1)} ms, first task submit->start / steady ${fmt(r)}`);
    }

    const pRatio = median(producers.map((r) => r.ratio));
    const wRatio = median(workers.map((r) => r.ratio));
    const figures: Figure[] = [
      { name: `first submit of a fresh producer process after ready() (median of ${runs})`, value: median(producers.map((r) => r.firstMs)), unit: 'ms', versus: { name: 'steady p50, one submit at a time', value: median(producers.map((r) => r.steadyP50Ms)) } },
      { name: 'first submit / steady p50, fresh producer (median of the per-process ratios)', value: pRatio, unit: 'x' },
      { name: 'second submit of a fresh producer process', value: median(producers.map((r) => r.secondMs)), unit: 'ms', versus: { name: 'steady p50', value: median(producers.map((r) => r.steadyP50Ms)) } },
      { name: 'producer ready() (connect, and whatever warm-up it does)', value: median(producers.map((r) => r.readyMs)), unit: 'ms' },
      { name: 'producer require() of the SDK', value: median(producers.map((r) => r.requireMs)), unit: 'ms' },
      { name: 'first submit of the first producer of a fresh dispatcher', value: cold.firstMs, unit: 'ms', versus: { name: 'its steady p50', value: cold.steadyP50Ms } },
      { name: `first task submit -> start of a fresh worker process after start() (median of ${runs})`, value: median(workers.map((r) => r.firstMs)), unit: 'ms', versus: { name: 'steady p50 submit -> start', value: median(workers.map((r) => r.steadyP50Ms)) } },
      { name: 'first task / steady p50, fresh worker (median of the per-process ratios)', value: wRatio, unit: 'x' },
    ];
    return {
      scenario: 'warmup',
      figures,
      targets: [check('6', 'first call vs steady p50', pRatio, '<=', 2, 'x'), check('6', 'first task vs steady p50 (fresh worker, submit -> start)', wRatio, '<=', 2, 'x')],
      notes: [
        `One dispatcher (zonal serve from ${path.relative(options.root, options.cli)}, SQLite NORMAL, admin and xDS off); every producer and worker a fresh process on the SDK (${path.relative(options.root, options.sdk)}).`,
        `Producers: ready(), then the first submit awaited alone, then ${steady} submits one at a time (steady p50); ${PAYLOAD_BYTES} B payloads. The first producer runs against the fresh dispatcher and is reported apart; the ${runs} measured ones find it warm.`,
        `Workers: 1 slot, own queue; ready() and start() (welcomed), then a warm producer submits one task, waits for it to start, then ${steady} one at a time; submit -> start from the payload's stamp (same machine clock).`,
        `Per process (first/steady): producers ${producers.map(fmt).join('; ')}; workers ${workers.map(fmt).join('; ')}.`,
        `node ${process.version}; ZONAL_BENCH_PROFILE=<dir> writes CPU profiles of the dispatcher and the producers.`,
      ],
    };
  } finally {
    if (warm !== undefined) {
      warm.send('stop');
      await warm.stop();
    }
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
};
