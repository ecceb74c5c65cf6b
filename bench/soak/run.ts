/**
 * `npm run soak`: a bounded chaos soak of real processes (issue 12, section 5).
 *
 *   npm run soak                               CI=true: 5 minutes of load and faults, then drain, verdict, report
 *   npm run soak -- --duration-ms 3600000      an hour
 *   npm run soak -- --seed 42                  replay a run's fault schedule and task mix
 *
 * Dispatchers (`zonal serve`) in zones a, b and c over PostgreSQL (a private
 * cluster when the binaries are installed; ZONAL_PG_URL must answer), or one
 * over SQLite; producers and workers (the SDK) in every zone through
 * `xds:///zonal`; worker kills, dispatcher kill -9 and restarts, blackholes,
 * latency and resets through fault proxies, runtime config churn, and a
 * PostgreSQL restart. Then every acknowledged task must be terminal in the
 * store, in the state its kind asks for. Flags: options.ts; phases:
 * soak-run.ts; faults: chaos.ts; what is checked: verdict.ts.
 *
 * Writes bench/results/soak-<timestamp>.json and prints a summary. Exit code
 * 0 only when nothing acknowledged was lost and every invariant held; 1
 * otherwise; 130 when interrupted (SIGINT, SIGTERM). The whole run ends within
 * --duration-ms + 90 s.
 */
import { compileOptions } from './options';
import { killAllChildren } from './processes';
import { printReport, writeReport } from './report';
import { SoakRun } from './soak-run';
import { stopSignalCounter } from '../../src/demo/demo-children';

async function main(): Promise<number> {
  const options = compileOptions(process.argv.slice(2), process.env);
  const run = new SoakRun(options);
  const seen = stopSignalCounter();
  const onSignal = (signal: NodeJS.Signals): void => {
    const which = seen();
    if (which === 'same') return; // one Ctrl-C, from the terminal and forwarded by npm
    if (which === 'first') {
      run.interrupt();
      return;
    }
    // A second signal: no more waiting. The orphan guard sees the soak gone and deletes the cluster and data.
    process.stderr.write(`soak: ${signal} again; killing every process now\n`);
    killAllChildren();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  process.stderr.write(`soak: seed ${options.seed}, ${options.durationMs / 1000} s of load and faults (whole run within ${(options.durationMs + 90_000) / 1000} s)\n`);
  try {
    await run.execute();
  } finally {
    await run.teardown();
  }
  const report = run.report();
  const file = writeReport(options.resultsDir, report);
  printReport(report, file);
  return report.result === 'PASS' ? 0 : report.result === 'INTERRUPTED' ? 130 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${String(err instanceof Error ? err.stack : err)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
