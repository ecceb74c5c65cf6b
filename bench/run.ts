/**
 * `npm run bench`: end-to-end figures for Zonal beside a baseline measured in
 * the same run on the same machine. Every figure is printed with its ratio to
 * the baseline; nothing here asserts (the benchmark issue sets the targets).
 *
 * Baseline: raw grpc-js unary calls on loopback (an echo service, 64 in flight),
 * the ceiling of one-task-per-call submission.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setLogLevel } from '../src/log';
import { ProducerClient } from '../src/client/producer-client';
import { Worker } from '../src/client/worker';
import { startServer } from '../src/app/start-server';
import { rawUnaryBaseline } from './raw-grpc-baseline';

const TASKS = Number(process.env['ZONAL_BENCH_TASKS'] ?? 20_000);

async function zonal(synchronous: 'FULL' | 'NORMAL'): Promise<{ submitPerSec: number; endToEndPerSec: number; commits: number }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-bench-'));
  const server = await startServer({ grpcAddress: '127.0.0.1:0', adminAddress: '', dataDir, sqliteSynchronous: synchronous, shutdownGraceMs: 500 });
  const producers = Array.from({ length: 3 }, () => new ProducerClient({ target: server.grpcAddress }));
  await Promise.all(producers.map((p) => p.ready()));
  // Submit only (durable acks), no workers connected.
  let t0 = performance.now();
  await Promise.all(Array.from({ length: TASKS }, (_, i) => producers[i % 3]!.submit({ payload: `task-${i}` })));
  const submitPerSec = TASKS / ((performance.now() - t0) / 1000);
  // Now drain them with 4 workers, then a second round end to end.
  let completed = 0;
  let target = TASKS;
  let onDone: () => void = () => undefined;
  const workers = Array.from({ length: 4 }, (_, i) =>
    new Worker({
      target: server.grpcAddress,
      slots: 64,
      workerId: `bench-${i}`,
      handler: (task) => {
        if (++completed === target) onDone();
        return task.payload;
      },
    }),
  );
  await Promise.all(workers.map((w) => w.start()));
  await new Promise<void>((resolve) => (completed >= target ? resolve() : (onDone = resolve)));
  completed = 0;
  target = TASKS;
  t0 = performance.now();
  const finished = new Promise<void>((resolve) => (onDone = resolve));
  await Promise.all(Array.from({ length: TASKS }, (_, i) => producers[i % 3]!.submit({ payload: `e2e-${i}` })));
  await finished;
  const endToEndPerSec = TASKS / ((performance.now() - t0) / 1000);
  const commits = server.dispatcher.stats().commits;
  for (const p of producers) p.close();
  await Promise.all(workers.map((w) => w.close({ graceMs: 500 })));
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
  return { submitPerSec, endToEndPerSec, commits };
}

async function main(): Promise<void> {
  setLogLevel('warn');
  const baseline = await rawUnaryBaseline(20_000, 64);
  const full = await zonal('FULL');
  const normal = await zonal('NORMAL');
  const row = (name: string, perSec: number): string =>
    `| ${name.padEnd(52)} | ${Math.round(perSec).toString().padStart(8)} | ${(perSec / baseline).toFixed(2).padStart(6)}x |`;
  console.log(`\nZonal benchmark, ${TASKS} tasks, node ${process.version}, all in one process on loopback\n`);
  console.log(`| ${'what'.padEnd(52)} | ${'per sec'.padStart(8)} | vs base |`);
  console.log(`|${'-'.repeat(54)}|${'-'.repeat(10)}|---------|`);
  console.log(row('baseline: raw grpc-js unary echo, 64 in flight', baseline));
  console.log(row('zonal submit, durable (SQLite FULL), SDK batching', full.submitPerSec));
  console.log(row('zonal submit -> 4 workers -> completed (FULL)', full.endToEndPerSec));
  console.log(row('zonal submit, durable (SQLite NORMAL)', normal.submitPerSec));
  console.log(row('zonal submit -> 4 workers -> completed (NORMAL)', normal.endToEndPerSec));
  console.log(`\ncommits (FULL run): ${full.commits} for ${TASKS * 2} tasks x ~4 state changes each`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
