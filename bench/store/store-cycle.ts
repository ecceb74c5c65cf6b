/**
 * The store alone, in one process: the group commits a dispatcher makes for
 * `tasks` tasks, `batch` at a time, each task inserted (PENDING, or
 * ASSIGNED when `sync`), claimed (unless `sync`) and completed. Prints the
 * store's time per task. For profiling the store path; not a user figure.
 *
 *   node dist-bench/bench/store/store-cycle.js [sqlite|postgres] [tasks] [batch] [sync]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { CommitBatch } from '../../src/core/commit-batch';
import type { TaskRecord } from '../../src/core/task-fields';
import { PostgresTaskStore } from '../../src/store/postgres/postgres-task-store';
import { SqliteTaskStore } from '../../src/store/sqlite/sqlite-task-store';
import type { TaskStore } from '../../src/store/task-store';

const [kind = 'sqlite', tasksText = '20000', batchText = '64', syncText = 'no'] = process.argv.slice(2);
const TASKS = Number(tasksText);
const BATCH = Number(batchText);
const SYNC = syncText === 'sync';
const OWNER = 'bench#1';

function task(i: number, now: number): TaskRecord {
  return {
    id: `t-${i}-${now}`,
    payload: Buffer.alloc(100, 1),
    queue: 'default',
    priority: 0,
    contentType: '',
    idempotencyKey: `k-${i}-${now}`,
    maxAttempts: 3,
    attemptTimeoutMs: 300_000,
    scheduleToStartTimeoutMs: 0,
    labels: {},
    preferredZone: '',
    producerZone: '',
    traceparent: '',
    tracestate: '',
    acceptedZone: '',
    createdMs: now,
    state: SYNC ? 'ASSIGNED' : 'PENDING',
    attempt: 1,
    version: SYNC ? 2 : 1,
    owner: SYNC ? OWNER : '',
    dispatcherZone: '',
    leaseExpiresMs: SYNC ? now + 10_000 : 0,
    sessionId: SYNC ? 's' : '',
    workerId: SYNC ? 'w' : '',
    workerZone: '',
    attemptDeadlineMs: SYNC ? now + 300_000 : 0,
    progressPermille: 0,
    result: null,
    error: null,
    notBeforeMs: 0,
    readyAtMs: now,
    startDeadlineMs: 0,
    updatedMs: now,
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'zonal-store-bench-'));
  const store: TaskStore =
    kind === 'sqlite'
      ? new SqliteTaskStore({ path: path.join(dir, 'zonal.db'), synchronous: 'NORMAL' })
      : new PostgresTaskStore({ url: process.env['ZONAL_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test', schema: `zonal_store_bench_${process.pid}` });
  await store.open();
  const base = (): Omit<CommitBatch, 'inserts' | 'writes' | 'claims'> => ({
    nowMs: Date.now(),
    owner: OWNER,
    dispatcherZone: '',
    leaseExpiresMs: Date.now() + 10_000,
    spilloverDelayMs: 0,
    idempotencyRetentionMs: 86_400_000,
  });
  await store.register({ owner: OWNER, dispatcherId: 'bench', zone: '', address: '' }, Date.now(), Date.now() + 3_600_000);
  const slots = Array.from({ length: BATCH }, () => ({ sessionId: 's', workerId: 'w' }));
  let held: TaskRecord[] = [];
  const t0 = performance.now();
  let commits = 0;
  for (let i = 0; i < TASKS + BATCH * 2; i += BATCH) {
    // One commit: the previous batch completes, a new batch is inserted, and (unless sync) the freed slots claim it.
    const now = Date.now();
    const inserts = i < TASKS ? Array.from({ length: Math.min(BATCH, TASKS - i) }, (_, j) => task(i + j, now)) : [];
    const writes = held.map((t) => ({ record: { ...t, state: 'COMPLETED' as const, version: t.version + 2, owner: '', sessionId: '', result: Buffer.alloc(0), progressPermille: 1000, updatedMs: now }, expectVersion: t.version, requeue: 'none' as const }));
    const outcome = await store.commit({ ...base(), inserts, writes, claims: SYNC ? [] : [{ queue: 'default', zone: '', slots }] });
    commits += 1;
    held = SYNC ? inserts : outcome.claimed[0]!.map((c) => c.task);
  }
  const ms = performance.now() - t0;
  console.log(`${kind}${SYNC ? ' (assigned at insert)' : ''}: ${TASKS} tasks in ${commits} commits of ${BATCH}: ${((ms * 1000) / TASKS).toFixed(1)} us per task, ${(ms / commits).toFixed(2)} ms per commit`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  if (kind !== 'sqlite') {
    const { Client } = await import('pg');
    const c = new Client({ connectionString: process.env['ZONAL_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test' });
    await c.connect();
    await c.query(`DROP SCHEMA zonal_store_bench_${process.pid} CASCADE`);
    await c.end();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
