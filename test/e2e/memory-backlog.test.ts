import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { pgStoreUrl, pgTestSchemas, skipWithoutPostgres } from '../support/postgres';
import { killAll, rssKb, spawnNode, spawnZonal, type Proc } from '../support/processes';

/**
 * The engine holds only the tasks it claimed: a backlog of 1,000,000 queued
 * tasks lives in the store, not in the dispatcher's heap. A dispatcher
 * process takes 1,000,000 submits (no worker, so all stay queued); its RSS is
 * sampled as the backlog grows, and again after a restart on the full store.
 */
const FIXTURES = path.resolve(__dirname, 'fixtures');
const BACKLOG = 1_000_000;
const WARM = 100_000;
const schemas = pgTestSchemas('e2emem');
afterAll(() => schemas.dropAll());

const mb = (kb: number): string => `${(kb / 1024).toFixed(0)} MB`;

describe('memory: 1,000,000 queued tasks', () => {
  const dirs: string[] = [];

  afterEach(async () => {
    await killAll();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function serve(store: string, dataDir: string): Promise<{ proc: Proc; grpc: string }> {
    const proc = spawnZonal(['serve', '--store', store, '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0', '--admin-address', 'off', '--register-with', 'off', '--dispatcher-id', 'mem']);
    const listening = await proc.waitForEvent('listening', 60_000);
    return { proc, grpc: String(listening['grpcAddress']) };
  }

  /** Samples the dispatcher's RSS at each progress line of a bulk producer, by backlog size. */
  async function fill(pid: number, target: string, count: number, samples: Map<number, number>): Promise<number> {
    const producer = spawnNode(path.join(FIXTURES, 'bulk-producer.js'), [], { ZONAL_TARGET: target, ZONAL_TEST_COUNT: String(count), ZONAL_TEST_WAVE: '2000' });
    let seen = 0;
    const sample = (): void => {
      for (const e of producer.events.slice(seen)) if (e['event'] === 'progress') samples.set(Number(e['acked']), rssKb(pid));
      seen = producer.events.length;
    };
    const timer = setInterval(sample, 200);
    try {
      const done = await producer.waitForEvent('done', 600_000);
      sample();
      return Number(done['elapsedMs']);
    } finally {
      clearInterval(timer);
    }
  }

  async function measure(kind: string, storeFor: (dataDir: string) => string): Promise<void> {
    const dataDir = mkdtempSync(path.join(tmpdir(), `zonal-mem-${kind}-`));
    dirs.push(dataDir);
    const store = storeFor(dataDir);
    const first = await serve(store, dataDir);
    const pid = first.proc.child.pid!;
    const idleKb = rssKb(pid);
    const warm = new Map<number, number>();
    await fill(pid, first.grpc, WARM, warm);
    const afterWarmKb = rssKb(pid);
    const samples = new Map<number, number>();
    const elapsedMs = await fill(pid, first.grpc, BACKLOG - WARM, samples);
    const afterKb = rssKb(pid);
    const peakKb = Math.max(afterWarmKb, ...samples.values());
    expect((await first.proc.kill('SIGTERM')).code).toBe(0);

    // A restart on the full store reads none of the backlog into memory.
    const second = await serve(store, dataDir);
    const restartKb = rssKb(second.proc.child.pid!);
    // And it still hands the backlog out.
    const worker = spawnNode(path.join(FIXTURES, 'recording-worker.js'), [], { ZONAL_TARGET: second.grpc, ZONAL_WORKER_ID: 'mem-worker', ZONAL_TEST_SLOTS: '64' });
    const completed = (): number => worker.events.filter((e) => e['event'] === 'settled').reduce((n, e) => n + (e['items'] as string[][]).filter((i) => i[3] === 'ACCEPTED').length, 0);
    await worker.waitForEvent('worker-running', 30_000);
    const drainStartedMs = Date.now();
    while (completed() < 5_000) {
      if (Date.now() - drainStartedMs > 60_000) throw new Error(`the worker completed only ${completed()} tasks of the backlog in 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const afterRestartWorkKb = rssKb(second.proc.child.pid!);
    expect((await worker.kill('SIGTERM')).code).toBe(0);
    expect((await second.proc.kill('SIGTERM')).code).toBe(0);

    const curve = [...samples.entries()].filter((_, i, all) => i % Math.max(1, Math.floor(all.length / 4)) === 0 || i === all.length - 1).map(([n, kb]) => `${WARM + n}: ${mb(kb)}`);
    console.log(
      `${kind}: dispatcher RSS idle ${mb(idleKb)}; after ${WARM} queued ${mb(afterWarmKb)}; after ${BACKLOG} queued ${mb(afterKb)} (peak ${mb(peakKb)}; ${curve.join(', ')}); ` +
        `submitting ${BACKLOG - WARM} took ${(elapsedMs / 1000).toFixed(1)} s (${Math.round((BACKLOG - WARM) / (elapsedMs / 1000))}/s); restarted on the full store ${mb(restartKb)}, with a worker that completed 5000 of it ${mb(afterRestartWorkKb)}`,
    );
    // Flat: the 900,000 tasks after the warm-up add less than 64 MB (the old engine held every task: about 1 KB each).
    expect(afterKb - afterWarmKb).toBeLessThan(64 * 1024);
    expect(peakKb - afterWarmKb).toBeLessThan(64 * 1024);
    expect(restartKb - idleKb).toBeLessThan(32 * 1024);
  }

  it('SQLite: the dispatcher RSS stays flat while the backlog grows, and after a restart', async () => {
    await measure('sqlite', (dataDir) => `sqlite:${dataDir}`);
  }, 900_000);

  it.skipIf(skipWithoutPostgres())('PostgreSQL: the dispatcher RSS stays flat while the backlog grows, and after a restart', async () => {
    const schema = schemas.next();
    await measure('postgres', () => pgStoreUrl(schema));
  }, 900_000);
});
