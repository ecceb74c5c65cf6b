/**
 * The soak's flags, compiled once into `SoakOptions` (validated, durations
 * in ms) and used as they are from then on.
 *
 *   --duration-ms N        how long load and faults run (default 300000 with CI=true, 600000 otherwise; 10000 .. 86400000)
 *   --seed N               the fault schedule's and task mix's seed (default: random, printed)
 *   --rate N               tasks per second per producer (3 producers; default 15)
 *   --workers-per-zone N   worker processes per zone (default 2)
 *   --slots N              slots per worker (default 16)
 *   --store KIND           auto (PostgreSQL when ZONAL_PG_URL answers, else SQLite), sqlite or postgres
 *   --results DIR          where soak-<timestamp>.json goes (default bench/results)
 *   --cli FILE, --sdk FILE the Zonal build under test (default dist/cli/main.js, dist/index.js)
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';

export const ROOT = path.resolve(__dirname, '..', '..', '..');

/** How much longer than --duration-ms the whole run may take: start, drain, verdict and teardown. */
export const OVERRUN_BUDGET_MS = 90_000;

export interface SoakOptions {
  durationMs: number;
  seed: number;
  ratePerSec: number;
  workersPerZone: number;
  slots: number;
  store: 'auto' | 'sqlite' | 'postgres';
  /** ZONAL_PG_URL; empty when unset. */
  pgUrl: string;
  resultsDir: string;
  cli: string;
  sdk: string;
  /** dist/demo/parent-watch.js: preloaded into every child, which stops itself if the soak dies. */
  parentWatch: string;
  root: string;
}

function whole(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  const value = text === undefined ? fallback : Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`--${name} must be a whole number ${min}..${max}, got ${text}`);
  return value;
}

export function compileOptions(argv: string[], env: NodeJS.ProcessEnv): SoakOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      'duration-ms': { type: 'string' },
      seed: { type: 'string' },
      rate: { type: 'string' },
      'workers-per-zone': { type: 'string' },
      slots: { type: 'string' },
      store: { type: 'string', default: 'auto' },
      results: { type: 'string', default: path.join(ROOT, 'bench', 'results') },
      cli: { type: 'string', default: path.join(ROOT, 'dist', 'cli', 'main.js') },
      sdk: { type: 'string', default: path.join(ROOT, 'dist', 'index.js') },
    },
  });
  const store = values.store!;
  if (store !== 'auto' && store !== 'sqlite' && store !== 'postgres') throw new RangeError(`--store must be auto, sqlite or postgres, got ${store}`);
  const ci = env['CI'] === 'true' || env['CI'] === '1';
  return {
    durationMs: whole('duration-ms', values['duration-ms'], ci ? 300_000 : 600_000, 10_000, 86_400_000),
    seed: whole('seed', values.seed, Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1),
    ratePerSec: whole('rate', values.rate, 15, 1, 500),
    workersPerZone: whole('workers-per-zone', values['workers-per-zone'], 2, 1, 8),
    slots: whole('slots', values.slots, 16, 1, 1_000),
    store,
    pgUrl: env['ZONAL_PG_URL'] ?? '',
    resultsDir: path.resolve(values.results!),
    cli: path.resolve(values.cli!),
    sdk: path.resolve(values.sdk!),
    parentWatch: path.join(ROOT, 'dist', 'demo', 'parent-watch.js'),
    root: ROOT,
  };
}
