import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/app/start-server';
import type { ServerOptionsInput } from '../../src/app/server-options';
import { ProducerClient } from '../../src/client/producer-client';
import { Worker, type TaskHandler } from '../../src/client/worker';
import { PG_MIGRATIONS } from '../../src/store/postgres/migrate';
import { FaultProxy } from '../../src/testing/fault-proxy';
import { eventually, TEST_KEEPALIVE } from '../support/server-harness';
import { PG_URL, pgStoreUrl, pgTestSchemas, skipWithoutPostgres } from '../support/postgres';

const schemas = pgTestSchemas('dispatchers');
afterAll(() => schemas.dropAll());

/** Several dispatchers over one PostgreSQL schema, each with real gRPC on 127.0.0.1 port 0. */
describe.skipIf(skipWithoutPostgres())('several dispatchers over one PostgreSQL', () => {
  const servers: RunningServer[] = [];
  const producers: ProducerClient[] = [];
  const workers: Worker[] = [];
  const dirs: string[] = [];
  const proxies: FaultProxy[] = [];

  afterEach(async () => {
    for (const p of producers.splice(0)) p.close();
    await Promise.all(workers.splice(0).map((w) => w.close({ graceMs: 200 })));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function dispatcher(store: string, zone: string, input: ServerOptionsInput = {}): Promise<RunningServer> {
    const dataDir = mkdtempSync(path.join(tmpdir(), `zonal-pg-${zone}-`));
    dirs.push(dataDir);
    const server = await startServer({
      grpcAddress: '127.0.0.1:0',
      adminAddress: '127.0.0.1:0',
      xdsAddress: '',
      registerWith: 'off',
      shutdownGraceMs: 200,
      dataDir,
      store,
      zone,
      dispatcherId: `dispatcher-${zone}`,
      ...input,
      core: { ...input.core, keepalive: { ...TEST_KEEPALIVE, ...input.core?.keepalive } },
    });
    servers.push(server);
    return server;
  }

  function producer(server: RunningServer, zone = ''): ProducerClient {
    const p = new ProducerClient({ target: server.grpcAddress, zone });
    producers.push(p);
    return p;
  }

  async function worker(server: RunningServer, handler: TaskHandler, slots = 4, zone = server.options.zone): Promise<Worker> {
    const w = new Worker({ target: server.grpcAddress, handler, slots, zone, workerId: `worker-${zone}-${workers.length}` });
    workers.push(w);
    await w.start();
    return w;
  }

  it('a task submitted in zone b runs on a zone-a worker after the spillover delay, when zone b has no free slot', async () => {
    const store = pgStoreUrl(schemas.next());
    const core = { zoneSpilloverDelayMs: 300 };
    const a = await dispatcher(store, 'a', { core });
    const b = await dispatcher(store, 'b', { core });
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const ran = new Map<string, string>();
    await worker(b, async (task) => {
      ran.set(task.taskId, 'b');
      await blocked;
    }, 1);
    await worker(a, (task) => void ran.set(task.taskId, 'a'), 1);
    const inB = producer(b, 'b');
    const first = await inB.submit({ payload: 'keeps b busy' });
    await eventually(() => ran.has(first.taskId), 5_000, 'b busy');
    const submittedAt = Date.now();
    const spilled = await inB.submit({ payload: 'waits, then spills' });
    expect((await inB.result(spilled.taskId, { timeoutMs: 10_000 })).toString()).toBe('');
    const waitedMs = Date.now() - submittedAt;
    console.log(`zone-b task ran on a zone-a worker ${waitedMs} ms after submit (spillover delay 300 ms)`);
    expect(ran.get(spilled.taskId)).toBe('a');
    expect(waitedMs).toBeGreaterThanOrEqual(300);
    const info = await inB.get(spilled.taskId);
    expect(info).toMatchObject({ state: 'COMPLETED', acceptedZone: 'b', producerZone: 'b', dispatcherZone: 'a', workerZone: 'a' });
    release();
  });

  it('GetTask, WatchTask, result() and CancelTask work through any dispatcher; a cancel reaches the worker wherever it is', async () => {
    const store = pgStoreUrl(schemas.next());
    const a = await dispatcher(store, 'a');
    const b = await dispatcher(store, 'b');
    const aborted = new Set<string>();
    await worker(b, async (task, ctx) => {
      if (task.payload.toString() === 'long') {
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        aborted.add(task.taskId);
        return '';
      }
      return `done by b: ${task.payload.toString()}`;
    });
    const viaA = producer(a);
    const viaB = producer(b);
    // Only b has a worker: a task submitted through a is claimed by b (a wake-up tells b at once).
    const { taskId } = await viaA.submit({ payload: 'x' });
    expect((await viaA.result(taskId, { timeoutMs: 10_000 })).toString()).toBe('done by b: x');
    expect(await viaB.get(taskId)).toMatchObject({ state: 'COMPLETED', dispatcherZone: 'b', acceptedZone: 'a' });
    // Watched through a while b runs it: every state, then the end.
    const long = await viaA.submit({ payload: 'long' });
    const states: string[] = [];
    const watching = (async () => {
      for await (const info of viaA.watch(long.taskId, { timeoutMs: 15_000 })) states.push(info.state);
    })();
    await eventually(async () => (await viaA.get(long.taskId)).state === 'RUNNING', 10_000, 'running on b');
    // a reads what b changes every remoteWatchPollMs (100 ms): the watch sees it run.
    await eventually(() => states.includes('RUNNING'), 5_000, 'the watch through a sees RUNNING');
    expect(await viaA.cancel(long.taskId, 'no longer needed')).toEqual({ state: 'CANCELLED', cancelled: true });
    await eventually(() => aborted.has(long.taskId), 5_000, "b's worker told to abort");
    await watching;
    expect(states.at(-1)).toBe('CANCELLED');
    expect(await viaB.get(long.taskId)).toMatchObject({ state: 'CANCELLED', error: { reason: 'CANCELLED' } });
  });

  it('the same idempotency key submitted concurrently through two dispatchers creates one task', async () => {
    const store = pgStoreUrl(schemas.next());
    const a = await dispatcher(store, 'a');
    const b = await dispatcher(store, 'b');
    const pa = producer(a);
    const pb = producer(b);
    const keys = Array.from({ length: 100 }, (_, i) => `order-${i}`);
    const answers = await Promise.all(keys.flatMap((key) => [pa.submit({ payload: key, idempotencyKey: key }), pb.submit({ payload: key, idempotencyKey: key })]));
    for (let i = 0; i < keys.length; i++) {
      const [fromA, fromB] = [answers[2 * i]!, answers[2 * i + 1]!];
      expect(fromA.taskId).toBe(fromB.taskId);
      expect([fromA.deduplicated, fromB.deduplicated].filter(Boolean).length).toBe(1);
    }
    const client = new Client({ connectionString: PG_URL });
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${store.split('schema=')[1]}.tasks`);
      expect(rows[0].n).toBe(100);
    } finally {
      await client.end();
    }
  });

  it('three dispatchers claiming one queue under load never give one task to two workers', async () => {
    const store = pgStoreUrl(schemas.next());
    const servers3 = [await dispatcher(store, 'a'), await dispatcher(store, 'b'), await dispatcher(store, 'c')];
    const runs = new Map<string, number>();
    for (const s of servers3) {
      for (let i = 0; i < 2; i++) {
        await worker(s, async (task) => {
          runs.set(task.taskId, (runs.get(task.taskId) ?? 0) + 1);
          if (Math.random() < 0.3) await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
        }, 8);
      }
    }
    const ps = servers3.map((s) => producer(s));
    const ids: string[] = [];
    await Promise.all(
      ps.map(async (p, i) => {
        for (let round = 0; round < 10; round++) {
          const batch = await Promise.all(Array.from({ length: 100 }, (_, j) => p.submit({ payload: `${i}-${round}-${j}` })));
          ids.push(...batch.map((r) => r.taskId));
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
        }
      }),
    );
    await eventually(() => ids.every((id) => runs.has(id)), 60_000, 'every task ran');
    const twice = ids.filter((id) => runs.get(id) !== 1);
    console.log(`3 dispatchers, 6 workers: ${ids.length} tasks, each ran once: ${twice.length === 0}`);
    expect(twice).toEqual([]);
  });

  it('an idle dispatcher is woken at once by another one\'s new task (no polling)', async () => {
    const store = pgStoreUrl(schemas.next());
    // The sweep that rechecks for missed wake-ups runs once a minute here: only the wake-up can be quick.
    const a = await dispatcher(store, 'a', { sweepIntervalMs: 60_000 });
    const b = await dispatcher(store, 'b', { sweepIntervalMs: 60_000 });
    let startedAt = 0;
    await worker(b, () => void (startedAt = Date.now()));
    // Each knows the other (a dispatcher alone sends no wake-ups): a newcomer announces itself.
    await eventually(() => a.dispatcher.stats().peers === 1 && b.dispatcher.stats().peers === 1, 10_000, 'peers known');
    const submittedAt = Date.now();
    const { taskId } = await producer(a).submit({ payload: 'wake b' });
    await eventually(() => startedAt > 0, 10_000, 'b starts the task');
    console.log(`task submitted through a started on b's worker ${startedAt - submittedAt} ms later`);
    expect((await producer(b).get(taskId)).dispatcherZone).toBe('b');
  });

  it('PostgreSQL unreachable: submits get UNAVAILABLE at once, /readyz says why, and everything recovers by itself', async () => {
    const schema = schemas.next();
    const target = new URL(PG_URL!);
    const proxy = await FaultProxy.start({ target: `${target.hostname}:${target.port || 5432}` });
    proxies.push(proxy);
    const url = new URL(pgStoreUrl(schema));
    url.host = proxy.address;
    const s = await dispatcher(url.toString(), 'a');
    const w = await worker(s, (task) => `ok ${task.payload.toString()}`);
    const p = producer(s);
    expect((await p.result((await p.submit({ payload: 'before' })).taskId)).toString()).toBe('ok before');

    proxy.resetNew(true);
    proxy.resetAll();
    const failures: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = Date.now();
      const outcome = await p.submit({ payload: `during ${i}` }).catch((e: unknown) => e);
      // The dispatcher answers STORE_UNAVAILABLE; after a few, the producer's own breaker to it fails fast (CIRCUIT_OPEN).
      expect(outcome).toMatchObject({ reason: expect.stringMatching(/^(STORE_UNAVAILABLE|CIRCUIT_OPEN)$/) });
      failures.push(Date.now() - t0);
    }
    console.log(`submits while PostgreSQL refuses connections: answered in ${failures.join(', ')} ms`);
    const readyz = await fetch(`http://${s.adminAddress}/readyz`);
    expect(readyz.status).toBe(503);
    const body = (await readyz.json()) as { ready: boolean; store: { ok: boolean; detail: string } };
    expect(body.store.ok).toBe(false);
    expect(body.store.detail.length).toBeGreaterThan(0);
    console.log(`/readyz while PostgreSQL is down: ${JSON.stringify(body.store)}`);

    proxy.resetNew(false);
    const backAt = Date.now();
    await eventually(async () => (await fetch(`http://${s.adminAddress}/readyz`)).status === 200, 20_000, 'ready again');
    const readyMs = Date.now() - backAt;
    // The producer's own breaker to the dispatcher reopens after its probe; a new producer submits at once.
    const fresh = producer(s);
    const after = await fresh.submit({ payload: 'after' });
    expect((await fresh.result(after.taskId, { timeoutMs: 10_000 })).toString()).toBe('ok after');
    await eventually(async () => (await p.submit({ payload: 'again' }).then(() => true, () => false)), 15_000, 'the first producer submits again');
    console.log(`PostgreSQL back: /readyz 200 after ${readyMs} ms; work flows again without a restart`);
    void w;
  });

  it('dispatchers starting together on a new schema run its migrations once', async () => {
    const schema = schemas.next();
    const store = pgStoreUrl(schema);
    await Promise.all([dispatcher(store, 'a'), dispatcher(store, 'b'), dispatcher(store, 'c')]);
    const client = new Client({ connectionString: PG_URL });
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT version FROM ${schema}.zonal_migrations ORDER BY version`);
      expect(rows.map((r: { version: number }) => Number(r.version))).toEqual(PG_MIGRATIONS.map((m) => m.version));
    } finally {
      await client.end();
    }
  });

  it("any dispatcher's heatmap shows every dispatcher's zone pairs, shared through the store", async () => {
    const store = pgStoreUrl(schemas.next());
    const a = await dispatcher(store, 'a', { heatmapShareIntervalMs: 200 });
    const b = await dispatcher(store, 'b', { heatmapShareIntervalMs: 200 });
    await worker(a, () => 'ok', 4, 'a');
    await worker(b, () => 'ok', 4, 'b');
    const viaA = producer(a, 'pa');
    const viaB = producer(b, 'pb');
    const ids = [];
    for (let i = 0; i < 10; i++) ids.push((await viaA.submit({ payload: `a${i}`, preferredZone: 'a' })).taskId, (await viaB.submit({ payload: `b${i}`, preferredZone: 'b' })).taskId);
    for (const id of ids) await viaA.result(id, { timeoutMs: 10_000 });
    type Page = { dispatchers: { id: string; zone: string; self: boolean }[]; cells: { from: string; to: string; count: number }[] };
    const page = async (server: RunningServer, rows: string): Promise<Page> => (await (await fetch(`http://${server.adminAddress}/api/heatmap?rows=${rows}`)).json()) as Page;
    for (const server of [a, b]) {
      const cells = async (rows: string): Promise<string> => JSON.stringify((await page(server, rows)).cells.map((c) => [c.from, c.to, c.count]));
      await eventually(async () => (await cells('producer')) === JSON.stringify([['pa', 'a', 10], ['pb', 'b', 10]]), 10_000, `both producers' rows on ${server.options.zone}'s page`);
      const byProducer = await page(server, 'producer');
      expect(byProducer.cells.map((c) => [c.from, c.to, c.count])).toEqual([['pa', 'a', 10], ['pb', 'b', 10]]);
      expect(byProducer.dispatchers.map((d) => `${d.zone}/${d.id}`).sort()).toEqual(['a/dispatcher-a', 'b/dispatcher-b']);
      expect(byProducer.dispatchers.find((d) => d.self)!.zone).toBe(server.options.zone);
      expect((await page(server, 'dispatcher')).cells.map((c) => [c.from, c.to, c.count])).toEqual([['a', 'a', 10], ['b', 'b', 10]]);
    }
    // Each dispatcher keeps its own rows in the store (rewritten, never added up twice).
    const db = new Client({ connectionString: PG_URL });
    await db.connect();
    try {
      const { rows } = await db.query(`SELECT dispatcher_id, sum((SELECT sum(x) FROM unnest(buckets) x))::int AS n FROM ${store.split('schema=')[1]}.latency_slots WHERE series = 'dispatch.producer' GROUP BY 1 ORDER BY 1`);
      expect(rows).toEqual([{ dispatcher_id: 'a/dispatcher-a', n: 10 }, { dispatcher_id: 'b/dispatcher-b', n: 10 }]);
    } finally {
      await db.end();
    }
  });
});
