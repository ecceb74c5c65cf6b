import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { buildBootstrap } from '../../src/xds/bootstrap';
import { SqliteTaskStore } from '../../src/store/sqlite/sqlite-task-store';
import { eventually } from '../support/server-harness';
import { killAll, spawnZonal, type Proc } from '../support/processes';

/**
 * Zones a, b and c, each with its own dispatcher process, behind one
 * `zonal xds` control plane. This test process is a zone-a producer using a
 * real @grpc/grpc-js-xds client; workers are separate processes.
 */
const HANDLER = path.resolve(__dirname, 'fixtures', 'tagging-handler.js');
const REGION = 'r1';

interface Sample {
  atMs: number;
  servedBy?: string;
  taskId?: string;
  error?: string;
}

describe('zone-aware discovery through xDS', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'zonal-xds-'));
  const cpFile = path.join(root, 'control-plane.json');
  let controlPlane: Proc;
  let cpAddress = '';
  let cpAdmin = '';
  const dispatchers = new Map<string, { proc: Proc; address: string }>();
  const workers = new Map<string, Proc>();
  let producer: ProducerClient;
  const acked: { taskId: string; servedBy: string }[] = [];
  const samples: Sample[] = [];
  let loops: Promise<void> | undefined;
  let stopLoops = false;

  function serve(zone: string, id: string, address = '127.0.0.1:0'): Proc {
    return spawnZonal([
      'serve', '--zone', zone, '--region', REGION, '--dispatcher-id', id,
      '--grpc-address', address, '--admin-address', 'off', '--data-dir', path.join(root, id),
      '--register-with', cpAddress, '--xds-health-window-ms', '600',
      '--heartbeat-min-interval-ms', '100', '--heartbeat-max-interval-ms', '200', '--base-idle-ms', '800', '--drain-grace-ms', '1000', '--drain-propagation-ms', '1000',
    ]);
  }

  async function startDispatcher(zone: string, id: string, address?: string): Promise<void> {
    const proc = serve(zone, id, address);
    const listening = await proc.waitForEvent('listening');
    dispatchers.set(id, { proc, address: String(listening['grpcAddress']) });
  }

  function worker(id: string, zone: string): Proc {
    const bootstrap = JSON.stringify(buildBootstrap({ xdsServer: cpAddress, zone, region: REGION, nodeId: id }));
    return spawnZonal(['worker', '--target', 'xds:///zonal', '--zone', zone, '--slots', '4', '--handler', HANDLER, '--worker-id', id], {
      GRPC_XDS_BOOTSTRAP_CONFIG: bootstrap,
      ZONAL_WORKER_ID: id,
      ZONAL_TEST_SLEEP_MS: '20',
    });
  }

  /** Zone of the dispatcher a worker was last welcomed by, and when. */
  function placement(id: string): { zone: string; atMs: number } | undefined {
    const events = workers.get(id)!.events.filter((e) => e['event'] === 'worker-connected');
    const last = events.at(-1);
    return last === undefined ? undefined : { zone: String(last['dispatcherZone']), atMs: Number(last['atMs']) };
  }

  async function status(): Promise<Record<string, any>> {
    return (await (await fetch(`http://${cpAdmin}/xds/status`)).json()) as Record<string, any>;
  }

  /** Four submit loops with short deadlines and no retries, so every sample shows where one call went. */
  function startLoops(): void {
    stopLoops = false;
    loops = Promise.all(
      Array.from({ length: 4 }, async (_, n) => {
        let i = 0;
        while (!stopLoops) {
          try {
            const r = await producer.submit({ payload: `loop${n}-${i++}` });
            acked.push({ taskId: r.taskId, servedBy: r.servedBy });
            samples.push({ atMs: Date.now(), servedBy: r.servedBy, taskId: r.taskId });
          } catch (err) {
            samples.push({ atMs: Date.now(), error: String(err) });
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
      }),
    ).then(() => undefined);
  }

  async function stopTheLoops(): Promise<void> {
    stopLoops = true;
    await loops;
  }

  const firstServedAfter = (sinceMs: number, match: (servedBy: string) => boolean): Sample | undefined =>
    samples.find((s) => s.atMs >= sinceMs && s.servedBy !== undefined && match(s.servedBy));

  beforeAll(async () => {
    writeFileSync(cpFile, JSON.stringify({ endpoints: [], policy: {} }));
    controlPlane = spawnZonal(['xds', '--address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--file', cpFile, '--health-window-ms', '600']);
    const listening = await controlPlane.waitForEvent('listening');
    cpAddress = String(listening['xdsAddress']);
    cpAdmin = String(listening['adminAddress']);
    await Promise.all([startDispatcher('a', 'da'), startDispatcher('b', 'db'), startDispatcher('c', 'dc')]);
    for (const [id, zone] of [['wa1', 'a'], ['wa2', 'a'], ['wb', 'b'], ['wc', 'c']] as const) workers.set(id, worker(id, zone));
    // The bootstrap is read once per process, when the first xds:/// channel is made.
    process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = JSON.stringify(buildBootstrap({ xdsServer: cpAddress, zone: 'a', region: REGION, nodeId: 'test-producer-a' }));
    producer = new ProducerClient({ target: 'xds:///zonal', call: { callTimeoutMs: 400, maxAttempts: 1 } });
    await producer.ready({ deadlineMs: 15_000 });
    await Promise.all([...workers.values()].map((w) => w.waitForEvent('worker-connected')));
  }, 60_000);

  afterAll(async () => {
    stopLoops = true;
    await loops;
    producer?.close();
    await killAll();
    rmSync(root, { recursive: true, force: true });
  });

  it('sends at least 99% of a zone-a producer calls, and every worker stream, to its own zone', async () => {
    // One burst of 1000 durable submits: a generous deadline, so a slow fsync on a loaded machine cannot fail it (still one attempt each).
    const bulk = new ProducerClient({ target: 'xds:///zonal', call: { callTimeoutMs: 30_000, maxAttempts: 1 } });
    let results: Awaited<ReturnType<ProducerClient['submit']>>[];
    try {
      await bulk.ready({ deadlineMs: 15_000 });
      results = await Promise.all(Array.from({ length: 1000 }, (_, i) => bulk.submit({ payload: `p${i}` })));
    } finally {
      bulk.close();
    }
    for (const r of results) acked.push({ taskId: r.taskId, servedBy: r.servedBy });
    const inZoneA = results.filter((r) => r.servedBy === 'a/da').length;
    console.log(`zone-a producer: ${inZoneA}/1000 calls served in zone a`);
    expect(inZoneA).toBeGreaterThanOrEqual(990);
    expect(placement('wa1')?.zone).toBe('a');
    expect(placement('wa2')?.zone).toBe('a');
    expect(placement('wb')?.zone).toBe('b');
    expect(placement('wc')?.zone).toBe('c');
  });

  it('uses a new endpoint within 500 ms of its registration (dns:/// never does), and drains it on SIGTERM', async () => {
    const dnsProducer = new ProducerClient({ target: `dns:///${dispatchers.get('da')!.address}` });
    try {
      startLoops();
      const a2 = serve('a', 'da2');
      const listening = await a2.waitForEvent('listening');
      dispatchers.set('da2', { proc: a2, address: String(listening['grpcAddress']) });
      let registeredAtMs = 0;
      await eventually(async () => {
        const s = await status();
        if (s['endpoints'].some((e: { id: string }) => e.id === 'da2')) registeredAtMs ||= Date.now();
        return registeredAtMs > 0;
      }, 5_000, 'da2 registered');
      await eventually(() => firstServedAfter(registeredAtMs - 100, (s) => s === 'a/da2') !== undefined, 3_000, 'a call served by da2');
      const firstUse = firstServedAfter(registeredAtMs - 100, (s) => s === 'a/da2')!;
      const xdsDelayMs = Math.max(0, firstUse.atMs - registeredAtMs);
      // The same moment over DNS: a dns:/// channel keeps the address it resolved.
      const dnsServedBy = await Promise.all(Array.from({ length: 200 }, (_, i) => dnsProducer.submit({ payload: `dns${i}` })));
      const dnsOnNew = dnsServedBy.filter((r) => r.servedBy === 'a/da2').length;
      for (const r of dnsServedBy) acked.push({ taskId: r.taskId, servedBy: r.servedBy });
      console.log(`new endpoint: xds:/// clients used it ${xdsDelayMs} ms after registration; dns:/// sent ${dnsOnNew}/200 calls to it`);
      expect(xdsDelayMs).toBeLessThan(500);
      expect(dnsOnNew).toBe(0);

      // SIGTERM: DRAINING is pushed and acknowledged first, then GoAway; it exits 0 and clients go on.
      const exit = await a2.kill('SIGTERM');
      const stoppedAtMs = Date.now();
      expect(exit.code).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await stopTheLoops();
      const afterStop = samples.filter((s) => s.atMs > stoppedAtMs);
      expect(afterStop.filter((s) => s.servedBy === 'a/da').length).toBeGreaterThan(0);
      expect(afterStop.filter((s) => s.servedBy === 'a/da2').length).toBe(0);
    } finally {
      dnsProducer.close();
    }
  });

  it('reports a resource the clients NACK, and the clients keep working on their last good config', async () => {
    writeFileSync(cpFile, JSON.stringify({ endpoints: [], policy: { lbPolicy: 'LEAST_REQUEST' } }));
    await eventually(async () => (await status())['nackCount'] > 0, 10_000, 'a NACK');
    const s = await status();
    const nack = s['recentNacks'][0];
    console.log(`NACK reported: ${JSON.stringify(nack)}`);
    expect(nack).toMatchObject({ type: 'Cluster' });
    expect(String(nack.error)).not.toBe('');
    // Still served, in zone a.
    const r = await producer.submit({ payload: 'after-nack' });
    acked.push({ taskId: r.taskId, servedBy: r.servedBy });
    expect(r.servedBy).toBe('a/da');
    // The NACKed version is not pushed again; a fixed file is accepted.
    const nacksBefore = (await status())['nackCount'];
    writeFileSync(cpFile, JSON.stringify({ endpoints: [], policy: { lbPolicy: 'ROUND_ROBIN' } }));
    await eventually(async () => {
      const clients = (await status())['clients'] as { types: Record<string, { sent: string; acked: string }> }[];
      return clients.length > 0 && clients.every((c) => c.types['Cluster'] === undefined || c.types['Cluster'].sent === c.types['Cluster'].acked);
    }, 10_000, 'every client to ACK the fixed cluster');
    expect((await status())['nackCount']).toBe(nacksBefore);
  });

  it('kill -9 of the zone-a dispatcher: producer and workers move to another zone within 1 s', async () => {
    startLoops();
    await eventually(() => samples.filter((s) => s.servedBy === 'a/da').length > 20, 5_000, 'traffic in zone a');
    const killedAtMs = Date.now();
    await dispatchers.get('da')!.proc.kill('SIGKILL');
    await eventually(() => firstServedAfter(killedAtMs, (s) => !s.startsWith('a/')) !== undefined, 5_000, 'a call served outside zone a');
    const producerMs = firstServedAfter(killedAtMs, (s) => !s.startsWith('a/'))!.atMs - killedAtMs;
    await eventually(() => ['wa1', 'wa2'].every((id) => (placement(id)?.atMs ?? 0) > killedAtMs), 5_000, 'zone-a workers to reconnect');
    const workerMs = Math.max(...['wa1', 'wa2'].map((id) => placement(id)!.atMs - killedAtMs));
    console.log(`kill -9 zone a: producer failed over in ${producerMs} ms, workers in ${workerMs} ms`);
    expect(producerMs).toBeLessThan(1_000);
    expect(workerMs).toBeLessThan(1_000);
    for (const id of ['wa1', 'wa2']) expect(placement(id)?.zone).not.toBe('a');
  });

  it('zone a returns: traffic and worker streams are back in zone a within 5 s', async () => {
    const restartAtMs = Date.now();
    await startDispatcher('a', 'da', dispatchers.get('da')!.address);
    await eventually(() => firstServedAfter(restartAtMs, (s) => s === 'a/da') !== undefined, 10_000, 'traffic back in zone a');
    const trafficMs = firstServedAfter(restartAtMs, (s) => s === 'a/da')!.atMs - restartAtMs;
    await eventually(() => ['wa1', 'wa2'].every((id) => placement(id)?.zone === 'a'), 10_000, 'zone-a workers back in zone a');
    const workersMs = Math.max(...['wa1', 'wa2'].map((id) => placement(id)!.atMs - restartAtMs));
    console.log(`zone a back: producer traffic after ${trafficMs} ms, worker streams after ${workersMs} ms`);
    expect(trafficMs).toBeLessThan(5_000);
    expect(workersMs).toBeLessThan(5_000);
  });

  it('SIGSTOP of the zone-a dispatcher: failover within 2 s, driven by the control plane health window', async () => {
    await eventually(() => samples.filter((s) => s.servedBy === 'a/da').length > 20, 5_000, 'traffic in zone a');
    const da = dispatchers.get('da')!.proc;
    const stoppedAtMs = Date.now();
    da.child.kill('SIGSTOP');
    try {
      await eventually(() => firstServedAfter(stoppedAtMs + 50, (s) => !s.startsWith('a/')) !== undefined, 5_000, 'a call served outside zone a');
      const producerMs = firstServedAfter(stoppedAtMs + 50, (s) => !s.startsWith('a/'))!.atMs - stoppedAtMs;
      await eventually(() => ['wa1', 'wa2'].every((id) => (placement(id)?.atMs ?? 0) > stoppedAtMs && placement(id)?.zone !== 'a'), 5_000, 'zone-a workers to move');
      const workerMs = Math.max(...['wa1', 'wa2'].map((id) => placement(id)!.atMs - stoppedAtMs));
      const endpointA = ((await status())['endpoints'] as { id: string; health: string }[]).find((e) => e.id === 'da');
      console.log(`SIGSTOP zone a: producer failed over in ${producerMs} ms, workers in ${workerMs} ms; control plane says ${endpointA?.health}`);
      expect(endpointA?.health).toBe('UNHEALTHY');
      expect(producerMs).toBeLessThan(2_000);
      expect(workerMs).toBeLessThan(2_000);
    } finally {
      da.child.kill('SIGCONT');
    }
    const resumedAtMs = Date.now();
    await eventually(() => firstServedAfter(resumedAtMs, (s) => s === 'a/da') !== undefined, 10_000, 'traffic back in zone a');
    await eventually(() => ['wa1', 'wa2'].every((id) => placement(id)?.zone === 'a'), 10_000, 'zone-a workers back');
    await stopTheLoops();
  });

  it('loses no acknowledged task: every one completes on the dispatcher that accepted it', async () => {
    const byDispatcher = new Map<string, string[]>();
    for (const { taskId, servedBy } of acked) {
      const id = servedBy.split('/')[1]!;
      if (!byDispatcher.has(id)) byDispatcher.set(id, []);
      byDispatcher.get(id)!.push(taskId);
    }
    // da2 was stopped for good; its tasks are durable in its own store (checked separately below).
    const checked: Record<string, number> = {};
    for (const [id, ids] of byDispatcher) {
      if (id === 'da2') continue;
      const direct = new ProducerClient({ target: dispatchers.get(id)!.address, call: { maxAttempts: 5, callTimeoutMs: 5_000 } });
      try {
        let next = 0;
        await Promise.all(
          Array.from({ length: 32 }, async () => {
            while (next < ids.length) {
              const taskId = ids[next++]!;
              const result = await direct.result(taskId, { timeoutMs: 60_000 });
              expect(result.toString()).toMatch(/^w[abc]\d?:\d+:/);
            }
          }),
        );
        checked[id] = ids.length;
      } finally {
        direct.close();
      }
    }
    // da2 is stopped: its acknowledged tasks are durable in its own store, waiting for it to return.
    const da2Ids = byDispatcher.get('da2') ?? [];
    const store = new SqliteTaskStore({ path: path.join(root, 'da2', 'zonal.db') });
    await store.open();
    try {
      for (const taskId of da2Ids) expect(await store.get(taskId), `task ${taskId} acknowledged by da2`).toBeDefined();
    } finally {
      await store.close();
    }
    console.log(`acknowledged tasks completed per dispatcher: ${JSON.stringify(checked)}; ${da2Ids.length} durable in the stopped da2 (${acked.length} acknowledged in all)`);
    expect(Object.values(checked).reduce((a, b) => a + b, 0) + da2Ids.length).toBe(acked.length);
  });
});
