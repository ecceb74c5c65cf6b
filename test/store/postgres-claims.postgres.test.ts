import { Client } from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { CommitBatch } from '../../src/core/commit-batch';
import { PostgresTaskStore } from '../../src/store/postgres/postgres-task-store';
import type { StoreEvent } from '../../src/store/task-store';
import { FaultProxy } from '../../src/testing/fault-proxy';
import { seededRandom } from '../support/core-harness';
import { PG_URL, pgTestSchemas, skipWithoutPostgres } from '../support/postgres';
import { taskRecord } from '../support/task-record';

const schemas = pgTestSchemas('claims');
afterAll(() => schemas.dropAll());

function batch(owner: string, overrides: Partial<CommitBatch> = {}): CommitBatch {
  const now = Date.now();
  return { nowMs: now, owner, dispatcherZone: '', leaseExpiresMs: now + 10_000, spilloverDelayMs: 0, idempotencyRetentionMs: 60_000, inserts: [], writes: [], claims: [], ...overrides };
}

/** PostgreSQL-only behaviour of the store: concurrent claims, wake-ups, the pool bound, a partition. */
describe.skipIf(skipWithoutPostgres())('PostgresTaskStore under concurrency', () => {
  const stores: PostgresTaskStore[] = [];
  const proxies: FaultProxy[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });

  async function open(schema: string, options: Partial<ConstructorParameters<typeof PostgresTaskStore>[0]> = {}): Promise<PostgresTaskStore> {
    const store = new PostgresTaskStore({ url: PG_URL!, schema, ...options });
    stores.push(store);
    await store.open();
    return store;
  }

  it.each([2, 3])('%i stores claiming one queue at random moments never take one task twice (20 rounds)', async (n) => {
    const random = seededRandom(n * 101);
    for (let round = 0; round < 20; round++) {
      const schema = schemas.next();
      const claimers = await Promise.all(Array.from({ length: n }, () => open(schema)));
      const tasks = Array.from({ length: 150 }, (_, i) => taskRecord(`r${round}-t${i}`, { createdMs: Date.now(), readyAtMs: Date.now() }));
      await claimers[0]!.commit(batch('seed#1', { inserts: tasks }));
      const taken = new Map<string, string>();
      await Promise.all(
        claimers.map(async (store, k) => {
          const owner = `claimer-${k}#1`;
          for (let attempt = 0; attempt < 40; attempt++) {
            await new Promise((resolve) => setTimeout(resolve, random() * 3));
            const slots = Array.from({ length: 1 + Math.floor(random() * 12) }, () => ({ sessionId: `s-${k}`, workerId: `w-${k}` }));
            const outcome = await store.commit(batch(owner, { claims: [{ queue: 'q', zone: '', slots }] }));
            for (const { task } of outcome.claimed[0]!) {
              expect(taken.get(task.id), `${task.id} claimed by ${taken.get(task.id)} and ${owner}`).toBeUndefined();
              taken.set(task.id, owner);
              expect(task.owner).toBe(owner);
            }
            if (taken.size === tasks.length) return;
          }
        }),
      );
      expect(taken.size).toBe(tasks.length);
      await Promise.all(stores.splice(0).map((s) => s.close()));
    }
  });

  it('wakes another store when ready tasks are written, and names the holder of a task cancelled elsewhere', async () => {
    const schema = schemas.next();
    const a = await open(schema);
    const b = await open(schema);
    const now = Date.now();
    await a.register({ owner: 'a#1', dispatcherId: 'a', zone: 'a', address: '' }, now, now + 60_000);
    await b.register({ owner: 'b#1', dispatcherId: 'b', zone: 'b', address: '' }, now, now + 60_000);
    const heard: StoreEvent[] = [];
    b.subscribe((e) => heard.push(e));
    await a.commit(batch('a#1', { inserts: [taskRecord('ready-1', { queue: 'emails', readyAtMs: now })] }));
    await expect.poll(() => heard.find((e) => e.kind === 'ready'), { timeout: 5_000 }).toMatchObject({ kind: 'ready', queues: ['emails'] });
    // b claims it; a cancels it: b hears it was its task.
    const claimed = await b.commit(batch('b#1', { claims: [{ queue: 'emails', zone: 'b', slots: [{ sessionId: 's', workerId: 'w' }] }] }));
    expect(claimed.claimed[0]!.map((c) => c.task.id)).toEqual(['ready-1']);
    await a.cancel('ready-1', Date.now(), { code: 1, reason: 'CANCELLED', message: 'x', retryable: false });
    await expect.poll(() => heard.find((e) => e.kind === 'cancelled'), { timeout: 5_000 }).toMatchObject({ kind: 'cancelled', owner: 'b#1', taskId: 'ready-1', attempt: 1 });
  });

  it('stays within its pool: at most pool_max connections (and one for wake-ups) under a burst of calls', async () => {
    const schema = schemas.next();
    const store = await open(schema, { poolMax: 3 });
    await store.commit(batch('o#1', { inserts: Array.from({ length: 50 }, (_, i) => taskRecord(`p${i}`)) }));
    const client = new Client({ connectionString: PG_URL });
    await client.connect();
    try {
      let most = 0;
      let done = false;
      const burst = Promise.all(Array.from({ length: 400 }, (_, i) => store.get(`p${i % 50}`))).finally(() => (done = true));
      while (!done) {
        const { rows } = await client.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'zonal-dispatcher'");
        most = Math.max(most, rows[0].n);
      }
      await burst;
      console.log(`pool_max 3: at most ${most} connections during a burst of 400 calls`);
      expect(most).toBeLessThanOrEqual(3 + 1);
      expect(most).toBeGreaterThanOrEqual(2);
    } finally {
      await client.end();
    }
  });

  it('a partition (every byte dropped) fails a commit within callTimeoutMs instead of hanging it', async () => {
    const target = new URL(PG_URL!);
    const proxy = await FaultProxy.start({ target: `${target.hostname}:${target.port || 5432}` });
    proxies.push(proxy);
    const url = new URL(PG_URL!);
    url.host = proxy.address;
    const store = new PostgresTaskStore({ url: url.toString(), schema: schemas.next(), callTimeoutMs: 800 });
    stores.push(store);
    await store.open();
    await store.commit(batch('o#1', { inserts: [taskRecord('before')] }));
    proxy.setFaults({ blackhole: true });
    const t0 = Date.now();
    await expect(store.commit(batch('o#1', { inserts: [taskRecord('during')] }))).rejects.toThrow(/callTimeoutMs|timeout/i);
    const tookMs = Date.now() - t0;
    console.log(`blackholed PostgreSQL: the commit failed after ${tookMs} ms (callTimeoutMs 800)`);
    expect(tookMs).toBeLessThan(5_000);
    expect(store.health().ok).toBe(false);
    proxy.setFaults({ blackhole: false });
    proxy.resetAll();
    await expect.poll(async () => (await store.commit(batch('o#1', { inserts: [taskRecord('after')] })).then(() => true, () => false)), { timeout: 10_000 }).toBe(true);
    expect(store.health().ok).toBe(true);
  });
  it('claims walk tasks_ready in claim order without a sort, also before the table was ever analyzed (a bulk load)', async () => {
    const schema = schemas.next();
    const store = await open(schema);
    const client = new Client({ connectionString: PG_URL });
    await client.connect();
    try {
      // 200,000 ready tasks loaded at once; no ANALYZE ran (autovacuum may be off or behind).
      await store.commit(batch('seed#1', { inserts: [taskRecord('template', { queue: 'q' })] }));
      await client.query(`INSERT INTO ${schema}.tasks SELECT 'bulk' || g, payload, queue, priority, content_type, '', max_attempts, attempt_timeout_ms,
          schedule_to_start_timeout_ms, labels, preferred_zone, producer_zone, accepted_zone, created_ms, state, attempt, version, owner, dispatcher_zone,
          lease_expires_ms, session_id, worker_id, worker_zone, attempt_deadline_ms, progress_permille, result, error, not_before_ms, ready_at_ms,
          start_deadline_ms, updated_ms, nextval('${schema}.task_seq') FROM ${schema}.tasks, generate_series(1, 200000) g WHERE id = 'template'`);
      const stats = await client.query(`SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE relid = '${schema}.tasks'::regclass`);
      expect(stats.rows[0]).toEqual({ last_analyze: null, last_autoanalyze: null });
      const { BEGIN_CLAIMING, CLAIM_AT_ONCE, CLAIM_SPILLED } = await import('../../src/store/postgres/sql/claim-tasks');
      const now = Date.now();
      const params = ['q', now, '', '', ['s1', 's2'], ['w1', 'w2'], 'o#1', now + 10_000];
      for (const [sql, values] of [[CLAIM_AT_ONCE, params], [CLAIM_SPILLED, [...params, now]]] as const) {
        await client.query(`SET search_path = ${schema}`);
        await client.query(BEGIN_CLAIMING);
        const plan = JSON.stringify((await client.query(`EXPLAIN (FORMAT JSON) ${sql}`, [...values])).rows[0]);
        await client.query('ROLLBACK');
        expect(plan).toContain('"Index Name":"tasks_ready"');
        expect(plan).not.toContain('"Node Type":"Sort"');
      }
      // And the claim itself, through the store.
      const t0 = Date.now();
      const outcome = await store.commit(batch('o#1', { claims: [{ queue: 'q', zone: '', slots: [{ sessionId: 's', workerId: 'w' }] }] }));
      console.log(`a claim over 200,000 never-analyzed queued tasks took ${Date.now() - t0} ms`);
      expect(outcome.claimed[0]!.map((c) => c.task.id)).toEqual(['template']);
    } finally {
      await client.end();
    }
  });
});
