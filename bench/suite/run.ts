/**
 * `npm run bench`: the benchmark suite. Every scenario runs its servers and
 * clients in separate processes, as users deploy them, beside its peer or
 * baseline (BullMQ on Redis, raw grpc-js) measured in the same invocation,
 * prints a table with the ratios and PASS or FAIL for each target, and the
 * whole run is written to bench/results/<timestamp>.json.
 *
 *   npm run bench                      every scenario, full shapes (about 15 minutes)
 *   npm run bench -- --quick           small shapes, under 2 minutes (CI runs it; targets printed, not asserted)
 *   npm run bench -- --scenarios throughput,latency
 *
 * Flags: --scenarios LIST, --quick, --json FILE (instead of bench/results/<timestamp>.json),
 * --cli FILE and --sdk FILE (another build of Zonal, to compare before and after),
 * --pg-url URL (ZONAL_PG_URL, default postgres://postgres@127.0.0.1:5432/test),
 * --redis-url URL (redis://127.0.0.1:6379), --tracing (every Zonal process exports its spans over
 * OTLP/HTTP to a sink in this process). Exit status: 0 when every scenario ran (whatever the
 * targets say: machines are noisy), 1 when one threw.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Figure, Scenario, ScenarioReport, SuiteOptions } from './report';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * In the order; throughput before latency (latency takes half the
 * measured maximum) and peer-bullmq (which reuses its runs). Each module is
 * loaded only when its scenario runs.
 */
const SCENARIOS: Record<string, () => Scenario> = {
  throughput: () => (require('./end-to-end') as typeof import('./end-to-end')).throughput,
  latency: () => (require('./end-to-end') as typeof import('./end-to-end')).latency,
  'baseline-grpc': () => (require('./baseline-grpc') as typeof import('./baseline-grpc')).baselineGrpc,
  'peer-bullmq': () => (require('./end-to-end') as typeof import('./end-to-end')).peerBullmq,
  streams: () => (require('./streams') as { streams: Scenario }).streams,
  failover: () => (require('./failover') as { failover: Scenario }).failover,
  warmup: () => (require('./warmup') as { warmup: Scenario }).warmup,
};

const { values } = parseArgs({
  options: {
    scenarios: { type: 'string', default: Object.keys(SCENARIOS).join(',') },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    cli: { type: 'string', default: path.join(ROOT, 'dist', 'cli', 'main.js') },
    sdk: { type: 'string', default: path.join(ROOT, 'dist', 'index.js') },
    'pg-url': { type: 'string', default: process.env['ZONAL_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
    tracing: { type: 'boolean', default: false },
  },
});

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs >= 100) return Math.round(n).toLocaleString('en-US');
  if (abs >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function figureRow(f: Figure): string {
  const versus = f.versus === undefined ? '' : `${formatNumber(f.versus.value)} (${f.versus.name})`;
  const ratio = f.versus === undefined || f.versus.value === 0 ? '' : `${(f.value / f.versus.value).toFixed(2)}x`;
  return `| ${f.name} | ${formatNumber(f.value)} ${f.unit} | ${versus} | ${ratio} |`;
}

function printReport(r: ScenarioReport): void {
  console.log(`\n## ${r.scenario}\n`);
  console.log('| figure | value | beside | ratio |');
  console.log('|---|---:|---:|---:|');
  for (const f of r.figures) console.log(figureRow(f));
  for (const n of r.notes) console.log(`- ${n}`);
}

/**
 * --tracing: an OTLP/HTTP sink in this process that takes every export and
 * counts its bytes; the children inherit the OTEL_* variables that point at it.
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
  for (const name of names) if (SCENARIOS[name] === undefined) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  const options: SuiteOptions = {
    quick: values.quick === true,
    root: ROOT,
    cli: values.cli!,
    sdk: values.sdk!,
    pgUrl: values['pg-url']!,
    redisUrl: values['redis-url']!,
    shared: new Map(),
  };
  const sink = values.tracing === true ? await startTraceSink() : undefined;
  const startedAt = new Date();
  const reports: ScenarioReport[] = [];
  const errors: { scenario: string; error: string }[] = [];
  // In the suite's own order, whatever order --scenarios lists them in.
  for (const name of Object.keys(SCENARIOS).filter((n) => names.includes(n))) {
    const t0 = Date.now();
    console.error(`${name}${options.quick ? ' (quick)' : ''} ...`);
    try {
      const report = await SCENARIOS[name]!()(options);
      reports.push(report);
      printReport(report);
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      errors.push({ scenario: name, error });
      console.log(`\n## ${name}\n\nERROR: ${error}`);
    }
    console.error(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const targets = reports.flatMap((r) => r.targets.map((t) => ({ scenario: r.scenario, ...t })));
  console.log(`\n## targets${options.quick ? ' (quick mode: small shapes, indicative only)' : ''}\n`);
  console.log('| # | target | measured | limit | result |');
  console.log('|---|---|---:|---:|---|');
  for (const t of targets) console.log(`| ${t.id} | ${t.text} | ${formatNumber(t.measured)} ${t.unit} | ${t.comparison} ${t.limit} ${t.unit} | ${t.pass ? 'PASS' : 'FAIL'} |`);
  const passed = targets.filter((t) => t.pass).length;
  console.log(`\n${passed} of ${targets.length} targets pass; ${errors.length} scenario(s) failed to run; node ${process.version}, ${os.cpus().length} CPUs, ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s`);
  if (sink !== undefined) {
    console.log(`tracing on: ${(sink.bytes() / 1024 / 1024).toFixed(1)} MiB of OTLP spans exported`);
    await sink.close();
  }
  const file = values.json ?? path.join(ROOT, 'bench', 'results', `${startedAt.toISOString().replace(/[:.]/g, '-')}${options.quick ? '-quick' : ''}.json`);
  mkdirSync(path.dirname(file), { recursive: true });
  const machine = { node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '', totalMemMiB: Math.round(os.totalmem() / 2 ** 20) };
  writeFileSync(file, JSON.stringify({ startedAt: startedAt.toISOString(), quick: options.quick, tracing: values.tracing === true, machine, reports, errors }, null, 2) + '\n');
  console.log(`results: ${path.relative(process.cwd(), file)}`);
  process.exitCode = errors.length > 0 ? 1 : 0;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
