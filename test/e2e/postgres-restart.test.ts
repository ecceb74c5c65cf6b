import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, spawnNode, spawnZonal, type Proc } from '../support/processes';
import { privatePostgresUnavailable, startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres';

/**
 * PostgreSQL crashes (pg_ctl stop -m immediate) and comes back while two
 * dispatchers, their workers and producers run; all are separate processes.
 * The database is a private cluster this test makes, never the machine's
 * shared server. The outage outlasts the task lease, so each dispatcher's
 * entry lapses and both must sort out which tasks are still theirs.
 */
const FIXTURES = path.resolve(__dirname, 'fixtures');
const PER_PRODUCER = 1_500;
const LEASE_MS = 3_000;
const OUTAGE_MS = 4_000;

const unavailable = privatePostgresUnavailable();
if (unavailable !== undefined) console.warn(`skipping the PostgreSQL restart test: ${unavailable}`);

async function pollUntil<T>(read: () => Promise<T | undefined>, timeoutMs: number, what: string, intervalMs = 50): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

describe.skipIf(unavailable !== undefined)('PostgreSQL restarted under load', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'zonal-pgrestart-'));
  let pg: PrivatePostgres;
  let store = '';
  const dispatchers = new Map<string, { proc: Proc; grpc: string; admin: string }>();
  const workers: Proc[] = [];
  const producers: Proc[] = [];

  async function readyz(id: string): Promise<{ status: number; body: Record<string, any> }> {
    const res = await fetch(`http://${dispatchers.get(id)!.admin}/readyz`);
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  }

  async function query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const client = new Client({ connectionString: pg.url });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as T[];
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    store = `${pg.url}?schema=zonal`;
    for (const id of ['d1', 'd2']) {
      const proc = spawnZonal([
        'serve', '--dispatcher-id', id, '--zone', id, '--store', store, '--task-lease-ms', String(LEASE_MS),
        '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--data-dir', path.join(root, id), '--register-with', 'off',
      ]);
      const listening = await proc.waitForEvent('listening', 30_000);
      dispatchers.set(id, { proc, grpc: String(listening['grpcAddress']), admin: String(listening['adminAddress']) });
    }
    for (const id of ['d1', 'd2']) {
      const worker = spawnNode(path.join(FIXTURES, 'recording-worker.js'), [], {
        ZONAL_TARGET: dispatchers.get(id)!.grpc, ZONAL_ZONE: id, ZONAL_WORKER_ID: `w-${id}`, ZONAL_TEST_SLOTS: '8', ZONAL_TEST_SLEEP_MS: '10',
      });
      workers.push(worker);
    }
    await Promise.all(workers.map((w) => w.waitForEvent('worker-running', 30_000)));
  }, 90_000);

  afterAll(async () => {
    await killAll();
    await pg?.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  it('producers get UNAVAILABLE fast, /readyz says why, and after the restart every task completes', async () => {
    for (const id of ['d1', 'd2']) {
      producers.push(spawnNode(path.join(FIXTURES, 'recording-producer.js'), [], {
        ZONAL_TARGET: dispatchers.get(id)!.grpc, ZONAL_ZONE: id, ZONAL_TEST_COUNT: String(PER_PRODUCER), ZONAL_TEST_PREFIX: `p-${id}`, ZONAL_TEST_CONCURRENCY: '8',
      }));
    }
    const ackedCount = (): number => producers.reduce((n, p) => n + p.events.filter((e) => e['event'] === 'acked').reduce((m, e) => m + (e['items'] as unknown[]).length, 0), 0);
    await pollUntil(async () => (ackedCount() >= 600 ? true : undefined), 60_000, 'some tasks to be acknowledged');

    await pg.stop('immediate');
    const downAtMs = Date.now();
    const ackedBeforeOutage = ackedCount();
    // Both dispatchers say they are not ready, and why.
    const notReady = await pollUntil(async () => {
      const r = await readyz('d1');
      return r.status === 503 ? r.body : undefined;
    }, 10_000, '/readyz to report the store down');
    const notReadyMs = Date.now() - downAtMs;
    expect(notReady['store']).toMatchObject({ kind: 'postgres', ok: false });
    expect(String(notReady['store']['detail'])).not.toBe('');
    await pollUntil(async () => ((await readyz('d2')).status === 503 ? true : undefined), 10_000, 'd2 to report the store down');
    // Producers see their submits fail (and keep retrying with the same keys).
    await pollUntil(async () => (producers.every((p) => p.events.some((e) => e['event'] === 'failures' && Number(e['atMs']) >= downAtMs)) ? true : undefined), 10_000, 'both producers to see failures');
    // The outage lasts longer than the task lease: each dispatcher's entry lapses.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - downAtMs))));

    await pg.start();
    const upAtMs = Date.now();
    await pollUntil(async () => ((await readyz('d1')).status === 200 && (await readyz('d2')).status === 200 ? true : undefined), 30_000, 'both dispatchers ready again');
    const readyAgainMs = Date.now() - upAtMs;
    const ackedAtRecovery = ackedCount();
    await pollUntil(async () => (ackedCount() > ackedAtRecovery ? true : undefined), 30_000, 'a submit acknowledged after the restart');
    const firstAckAfterMs = Date.now() - upAtMs;

    await Promise.all(producers.map((p) => p.waitForEvent('done', 120_000)));
    await pollUntil(async () => {
      const rows = await query<{ n: number }>(`SELECT count(*)::int AS n FROM zonal.tasks WHERE state <> 'COMPLETED'`);
      return rows[0]!.n === 0 ? true : undefined;
    }, 120_000, 'every task to complete', 200);
    await Promise.all(workers.map((w) => w.kill('SIGTERM')));

    const tasks = await query<{ id: string; attempt: number; key: string; result: string }>(`SELECT id, attempt::int AS attempt, idempotency_key AS key, convert_from(result, 'UTF8') AS result FROM zonal.tasks`);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const acked = producers.flatMap((p) => p.events.filter((e) => e['event'] === 'acked').flatMap((e) => e['items'] as [number, string, string][]));
    // Every task was acknowledged once (retries found their key's task), exists and completed with its own attempt's result.
    expect(acked.length).toBe(2 * PER_PRODUCER);
    expect(tasks.length).toBe(2 * PER_PRODUCER);
    expect(new Set(tasks.map((t) => t.key)).size).toBe(2 * PER_PRODUCER);
    for (const [, taskId] of acked) {
      const t = byId.get(taskId);
      expect(t, `acknowledged task ${taskId}`).toBeDefined();
      expect(t!.result.split(':')[1]).toBe(String(t!.attempt));
    }
    // No task has two accepted results.
    const accepted = new Map<string, number>();
    for (const w of workers) {
      for (const e of w.events.filter((ev) => ev['event'] === 'settled')) {
        for (const [taskId, , , result] of e['items'] as [string, number, string, string][]) if (result === 'ACCEPTED') accepted.set(taskId, (accepted.get(taskId) ?? 0) + 1);
      }
    }
    expect([...accepted.values()].filter((n) => n > 1)).toEqual([]);
    const failures = producers.flatMap((p) => p.events.filter((e) => e['event'] === 'failures'));
    const codes: Record<string, number> = {};
    for (const f of failures) for (const [code, n] of Object.entries(f['codes'] as Record<string, number>)) codes[code] = (codes[code] ?? 0) + n;
    const slowestFailureMs = Math.max(0, ...failures.map((f) => Number(f['maxMs'])));
    const reruns = tasks.filter((t) => t.attempt > 1).length;
    console.log(
      `PostgreSQL down ${upAtMs - downAtMs} ms (crash, then restart) with ${ackedBeforeOutage} of ${2 * PER_PRODUCER} tasks acknowledged: ` +
        `/readyz 503 after ${notReadyMs} ms ("${notReady['store']['detail']}"); failed submits ${JSON.stringify(codes)}, slowest ${slowestFailureMs} ms; ` +
        `ready again ${readyAgainMs} ms after the restart, first acknowledgement after ${firstAckAfterMs} ms; all ${tasks.length} tasks completed, ${reruns} re-ran`,
    );
    // Failing fast: no submit waited for its 5 s deadline.
    expect(slowestFailureMs).toBeLessThan(3_000);
    expect(Object.keys(codes).some((c) => c.startsWith('14:'))).toBe(true);
    for (const id of ['d1', 'd2']) expect((await dispatchers.get(id)!.proc.kill('SIGTERM')).code).toBe(0);
  }, 240_000);
});
