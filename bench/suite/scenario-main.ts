/**
 * Runs one scenario of the suite and prints its report as JSON on stdout:
 *
 *   node dist-bench/bench/suite/scenario-main.js <baseline-grpc|streams|warmup> [--quick]
 *
 * Progress goes to stderr. Exit code 0 when the scenario ran (whatever its
 * targets say), 1 when it failed to run, 2 on a bad command line.
 */
import * as path from 'node:path';
import { baselineGrpc } from './baseline-grpc';
import type { Scenario, SuiteOptions } from './report';
import { streams } from './streams';
import { warmup } from './warmup';

const SCENARIOS: Record<string, Scenario> = {
  'baseline-grpc': baselineGrpc,
  streams,
  warmup,
};

function suiteOptions(quick: boolean): SuiteOptions {
  const root = path.resolve(__dirname, '..', '..', '..');
  return {
    quick,
    root,
    cli: path.join(root, 'dist', 'cli', 'main.js'),
    sdk: path.join(root, 'dist', 'index.js'),
    pgUrl: process.env['ZONAL_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
    redisUrl: 'redis://127.0.0.1:6379',
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const names = args.filter((a) => !a.startsWith('--'));
  const scenario = names.length === 1 ? SCENARIOS[names[0]!] : undefined;
  if (scenario === undefined) {
    process.stderr.write(`usage: scenario-main.js <${Object.keys(SCENARIOS).join('|')}> [--quick]\n`);
    process.exit(2);
  }
  const started = Date.now();
  const report = await scenario(suiteOptions(quick));
  process.stderr.write(`[suite] ${names[0]} took ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  // Child handles (timers of finished children, stdin pipes) must not keep the runner alive.
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
