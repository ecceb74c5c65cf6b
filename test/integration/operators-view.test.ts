import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ProducerClient } from '../../src/client/producer-client';
import { NonRetryableError, Worker } from '../../src/client/worker';
import { FaultProxy } from '../../src/testing/fault-proxy';
import { eventually, startHarness, type Harness } from '../support/server-harness';
import { RawWorker, Resources } from './raw-peer';

/**
 * The operators' view of one dispatcher in zone a under a scripted workload
 * across two zones: a zone-a worker on a direct link, a zone-b worker behind
 * a proxy that adds 5 ms each way, a zone-a producer. Read back through the
 * admin port as an operator would: /metrics, /api/heatmap, and the SLO
 * check's webhook.
 */
describe('operators view: metrics, heatmap API and the SLO check after a workload across two zones', () => {
  let harness: Harness;
  let proxy: FaultProxy;
  let admin = '';
  let configFile = '';
  let version = 1;
  const dir = mkdtempSync(path.join(tmpdir(), 'zonal-ops-'));
  const workers: Worker[] = [];
  let producer: ProducerClient;
  const notices: Record<string, unknown>[] = [];
  let webhook: http.Server;
  const res = new Resources();
  let attemptsOfFlaky = 0;

  async function get(pathAndQuery: string): Promise<{ status: number; text: string }> {
    const response = await fetch(`http://${admin}${pathAndQuery}`);
    return { status: response.status, text: await response.text() };
  }

  /** The value of one sample line of /metrics (0 when absent). */
  async function sample(name: string, labels: Record<string, string> = {}): Promise<number> {
    const { text } = await get('/metrics');
    const wanted = Object.entries(labels);
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      const labelText = line.slice(name.length).split(' ')[0] ?? '';
      if (wanted.every(([k, v]) => labelText.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
    }
    return 0;
  }

  async function publish(doc: Record<string, unknown>): Promise<void> {
    version += 1;
    writeFileSync(`${configFile}.tmp`, stringify({ version, ...doc }));
    renameSync(`${configFile}.tmp`, configFile);
    const wanted = version;
    await eventually(() => harness.server.runtimeConfig.current.version === wanted, 10_000, `config version ${wanted}`);
  }

  beforeAll(async () => {
    webhook = http.createServer((req, res2) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        notices.push(JSON.parse(body) as Record<string, unknown>);
        res2.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    configFile = path.join(dir, 'runtime.yaml');
    // a->b must stay under 5 ms at p99: the proxy's 10 ms round trip breaks it.
    writeFileSync(configFile, stringify({ version: 1, slo: { defaultP99Ms: 10_000, pairs: { 'a->b': { p99Ms: 5 } } } }));
    harness = await startHarness({
      zone: 'a',
      dispatcherId: 'ops-a',
      adminAddress: '127.0.0.1:0',
      config: configFile,
      sloIntervalMs: 100,
      sloWindowMs: 60_000,
      sloMinSamples: 5,
      sloWebhookUrl: `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/slo`,
    });
    admin = harness.server.adminAddress;
    proxy = await FaultProxy.start({ target: harness.target, faults: { latencyMs: 5 } });
    const handler = async (task: { payload: Buffer }): Promise<string> => {
      const text = task.payload.toString();
      if (text === 'fatal') throw new NonRetryableError('no');
      if (text === 'flaky' && attemptsOfFlaky++ === 0) throw new Error('once');
      if (text === 'slow') await new Promise((resolve) => setTimeout(resolve, 60_000));
      return 'ok';
    };
    workers.push(new Worker({ target: harness.target, zone: 'a', workerId: 'wa', slots: 4, handler }));
    workers.push(new Worker({ target: proxy.address, zone: 'b', workerId: 'wb', slots: 4, handler }));
    await Promise.all(workers.map((w) => w.start()));
    producer = new ProducerClient({ target: harness.target, zone: 'a' });

    // The workload: 20 tasks for each zone's worker, one that fails for good, one retried once, one cancelled.
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      ids.push((await producer.submit({ payload: `a${i}`, preferredZone: 'a' })).taskId);
      ids.push((await producer.submit({ payload: `b${i}`, preferredZone: 'b' })).taskId);
    }
    for (const id of ids) await producer.result(id, { timeoutMs: 20_000 });
    await expect(producer.result((await producer.submit({ payload: 'fatal', preferredZone: 'a' })).taskId)).rejects.toThrow();
    await producer.result((await producer.submit({ payload: 'flaky', preferredZone: 'a', maxAttempts: 3 })).taskId, { timeoutMs: 20_000 });
    const slow = await producer.submit({ payload: 'slow', preferredZone: 'a' });
    await eventually(async () => (await producer.get(slow.taskId)).state === 'RUNNING', 10_000, 'the slow task to run');
    await producer.cancel(slow.taskId);
    await eventually(async () => (await producer.get(slow.taskId)).state === 'CANCELLED', 10_000, 'the cancel');
  }, 60_000);

  afterAll(async () => {
    producer?.close();
    await Promise.all(workers.map((w) => w.close({ graceMs: 100 })));
    await res.release();
    await proxy?.close();
    await harness?.cleanup();
    await new Promise<void>((resolve) => webhook.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts tasks by outcome, queue and zone', async () => {
    expect(await sample('zonal_tasks_submitted_total', { queue: 'default', zone: 'a' })).toBe(43);
    expect(await sample('zonal_tasks_completed_total', { queue: 'default', zone: 'a' })).toBe(21);
    expect(await sample('zonal_tasks_completed_total', { queue: 'default', zone: 'b' })).toBe(20);
    expect(await sample('zonal_tasks_failed_total', { queue: 'default', zone: 'a' })).toBe(1);
    expect(await sample('zonal_tasks_retried_total', { queue: 'default', zone: 'a' })).toBe(1);
    expect(await sample('zonal_tasks_cancelled_total', { queue: 'default', zone: 'a' })).toBe(1);
  });

  it('records dispatch and completion latency by zone triple: the zone behind 10 ms of round trip is slower', async () => {
    const count = (worker: string) => sample('zonal_task_dispatch_seconds_count', { producer_zone: 'a', dispatcher_zone: 'a', worker_zone: worker });
    const sum = (worker: string) => sample('zonal_task_dispatch_seconds_sum', { producer_zone: 'a', dispatcher_zone: 'a', worker_zone: worker });
    // Attempt 1 of every task that a worker took: 20 + fatal + flaky + slow in a, 20 in b.
    expect(await count('a')).toBe(23);
    expect(await count('b')).toBe(20);
    const meanA = (await sum('a')) / 23;
    const meanB = (await sum('b')) / 20;
    console.log(`dispatch latency mean: zone a ${(meanA * 1000).toFixed(2)} ms, zone b (10 ms RTT) ${(meanB * 1000).toFixed(2)} ms`);
    expect(meanB).toBeGreaterThan(0.01);
    expect(meanB).toBeGreaterThan(meanA);
    expect(await sample('zonal_task_completion_seconds_count', { worker_zone: 'b' })).toBe(20);
    expect(await sample('zonal_task_dispatch_seconds_bucket', { worker_zone: 'b', le: '0.0075' })).toBe(0);
  });

  it('counts refused updates by reason, and keeps the default process metrics under their standard names', async () => {
    const worker = await RawWorker.connect(res, res.client(harness.target), { workerId: 'raw', slots: 1, zone: 'b' });
    const ack = await worker.update({ taskId: 'nope', attempt: 1, status: 'RUNNING', version: 2 }, 5);
    expect(ack['reason']).toBe('SEQUENCE_GAP');
    await eventually(async () => (await sample('zonal_updates_refused_total', { reason: 'SEQUENCE_GAP' })) === 1, 5_000, 'the refusal counted');
    const { text } = await get('/metrics');
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(text).not.toContain('zonal_process_');
    expect(text).toMatch(/zonal_keepalive_interval_seconds\{worker_zone="a"\} 15/);
  });

  it('reports the ready depth of the store by queue and zone', async () => {
    for (let i = 0; i < 3; i++) await producer.submit({ payload: 'waits', queue: 'nobody-listens', preferredZone: 'c' });
    await eventually(async () => (await sample('zonal_queue_ready_tasks', { queue: 'nobody-listens', zone: 'c' })) === 3, 15_000, 'ready depth 3');
  });

  it('/api/heatmap gives the zone matrix with counts and one pair\'s time x bucket histogram; a bad query is a 400', async () => {
    const { status, text } = await get('/api/heatmap?metric=dispatch&rows=producer&quantile=p99&window=5m&from=a&to=b');
    expect(status).toBe(200);
    const body = JSON.parse(text) as { rowZones: string[]; columnZones: string[]; cells: { from: string; to: string; count: number; valueMs: number; breach: boolean; thresholdMs: number }[]; pair: { slots: { counts: number[] }[] }; dispatchers: { id: string; self: boolean }[] };
    expect(body.rowZones).toEqual(['a']);
    expect(body.columnZones).toEqual(['a', 'b']);
    const ab = body.cells.find((c) => c.from === 'a' && c.to === 'b')!;
    const aa = body.cells.find((c) => c.from === 'a' && c.to === 'a')!;
    expect(ab.count).toBe(20);
    expect(aa.count).toBe(23);
    expect(ab.valueMs).toBeGreaterThan(10);
    expect(ab.thresholdMs).toBe(5);
    expect(body.dispatchers).toEqual([{ id: 'ops-a', zone: 'a', self: true }]);
    expect(body.pair.slots.reduce((n, s) => n + s.counts.reduce((a, b) => a + b, 0), 0)).toBe(20);
    expect((await fetch(`http://${admin}/api/heatmap`, { method: 'POST' })).status).toBe(405);
    expect((await get('//x/../metrics')).status).toBe(404);
    const bad = await get('/api/heatmap?quantile=p42');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('quantile must be one of p50, p95, p99');
  });

  it('the SLO check fires for the slow pair (log, gauge, webhook, page mark) and recovers when the objective allows it', async () => {
    await eventually(async () => (await sample('zonal_slo_breach', { from_zone: 'a', to_zone: 'b', quantile: 'p99' })) === 1, 10_000, 'the breach gauge').catch(async (err: unknown) => {
      console.log('SLO state:', JSON.stringify(harness.server.runtimeConfig.current.slo), (await get('/api/heatmap?window=1h')).text.slice(0, 2000));
      throw err;
    });
    expect(await sample('zonal_slo_breach', { from_zone: 'a', to_zone: 'a', quantile: 'p99' })).toBe(0);
    expect(await sample('zonal_slo_p99_threshold_seconds', { from_zone: 'a', to_zone: 'b' })).toBe(0.005);
    expect(await sample('zonal_slo_p99_threshold_seconds', { from_zone: 'a', to_zone: 'a' })).toBe(10);
    await eventually(() => notices.some((n) => n['event'] === 'slo_breach'), 10_000, 'the breach notice');
    const breach = notices.find((n) => n['event'] === 'slo_breach')!;
    expect(breach).toMatchObject({ fromZone: 'a', toZone: 'b', quantile: 'p99', thresholdMs: 5, dispatcherId: 'ops-a', dispatcherZone: 'a' });
    expect(breach['valueMs']).toBeGreaterThan(5);
    const page = JSON.parse((await get('/api/heatmap?from=a&to=b')).text) as { cells: { to: string; breach: boolean }[] };
    expect(page.cells.find((c) => c.to === 'b')!.breach).toBe(true);
    expect(page.cells.find((c) => c.to === 'a')!.breach).toBe(false);

    await publish({ slo: { defaultP99Ms: 10_000, pairs: { 'a->b': { p99Ms: 1_000 } } } });
    await eventually(() => notices.some((n) => n['event'] === 'slo_recovery'), 10_000, 'the recovery notice');
    expect(notices.find((n) => n['event'] === 'slo_recovery')).toMatchObject({ fromZone: 'a', toZone: 'b', quantile: 'p99', thresholdMs: 1_000 });
    expect(await sample('zonal_slo_breach', { from_zone: 'a', to_zone: 'b', quantile: 'p99' })).toBe(0);
    expect(notices.filter((n) => n['event'] === 'slo_breach')).toHaveLength(1);
  });
});
