import { mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ProducerClient } from '../../src/client/producer-client';
import { Worker } from '../../src/client/worker';
import { FileSource } from '../../src/config/file-source';
import { followRuntimeConfig } from '../../src/config/follow';
import { RuntimeConfig } from '../../src/config/runtime-config';
import { DEFAULT_BASELINE } from '../../src/config/runtime-schema';
import { currentLogLevel, setLogLevel } from '../../src/log';
import { eventually, startHarness, type Harness } from '../support/server-harness';
import { RawWorker, Resources, submit } from './raw-peer';

/** Dates the file a minute back: a file that old is stable, so the file source applies it before start returns. */
function writtenLongAgo(file: string): void {
  const past = new Date(Date.now() - 60_000);
  utimesSync(file, past, past);
}

/**
 * One of each kind of runtime value, changed by editing the watched config
 * file of a running dispatcher (and of a producer): every change shows up
 * in behaviour, and no worker stream or client channel reconnects.
 */
describe('runtime config changes take effect live', () => {
  let dir: string;
  let file: string;
  let harness: Harness;
  let version = 1;
  const workers: Worker[] = [];
  const producers: ProducerClient[] = [];
  const res = new Resources();
  const levelBefore = currentLogLevel();

  /** Writes the next version atomically (temp + rename) and waits until it is in force. */
  async function publish(doc: Record<string, unknown>): Promise<number> {
    version += 1;
    const temp = `${file}.tmp`;
    writeFileSync(temp, stringify({ version, publishedAt: new Date().toISOString(), ...doc }));
    renameSync(temp, file);
    const wanted = version;
    await eventually(() => harness.server.runtimeConfig.current.version === wanted, 10_000, `version ${wanted} in force`);
    return wanted;
  }

  async function startWorker(options: Partial<ConstructorParameters<typeof Worker>[0]> = {}): Promise<Worker> {
    const w = new Worker({ target: harness.target, slots: 2, handler: () => 'ok', ...options });
    workers.push(w);
    await w.start();
    return w;
  }

  function producer(): ProducerClient {
    const p = new ProducerClient({ target: harness.target });
    producers.push(p);
    return p;
  }

  async function metric(name: string): Promise<string> {
    const text = await (await fetch(`http://${harness.server.adminAddress}/metrics`)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith(name))
      .join('\n');
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'zonal-live-'));
    file = path.join(dir, 'runtime.yaml');
    writeFileSync(file, stringify({ version: 1 }));
    writtenLongAgo(file);
    harness = await startHarness({ config: file, adminAddress: '127.0.0.1:0' });
    expect(harness.server.runtimeConfig.current.version).toBe(1);
  });

  afterEach(async () => {
    for (const p of producers.splice(0)) p.close();
    await Promise.all(workers.splice(0).map((w) => w.close({ graceMs: 100 })));
    res.release();
  });

  afterAll(async () => {
    await harness.cleanup();
    rmSync(dir, { recursive: true, force: true });
    setLogLevel(levelBefore);
  });

  it('keepalive bounds and lbIdleWindowMs: running workers are told the new interval on the same stream', async () => {
    const w = await startWorker();
    const sessionId = w.sessionId;
    expect(w.keepalive?.intervalMs).toBe(15_000);
    // A budget of 0.1 heartbeats/s wants 10 s; the LB cap 0.8 x 5 s - 250 ms wins.
    await publish({ keepalive: { minIntervalMs: 1_000, lbIdleWindowMs: 5_000, heartbeatBudgetPerSec: 0.1 } });
    await eventually(() => w.keepalive?.intervalMs === 3_750, 5_000, 'the worker to hear 3750 ms');
    expect(w.sessionId).toBe(sessionId);
    expect(w.stats.connects).toBe(1);
  });

  it('the idle base: the idle timeout of a running session follows', async () => {
    const w = await startWorker();
    await publish({ keepalive: { minIntervalMs: 1_000, lbIdleWindowMs: 5_000, heartbeatBudgetPerSec: 0.1, baseIdleMs: 20_000 } });
    await eventually(() => w.keepalive?.idleTimeoutMs === 20_000, 5_000, 'the worker to hear a 20 s idle timeout');
    const session = harness.server.dispatcher.engine.getSession(w.sessionId!);
    expect(session?.idleTimeoutMs).toBe(20_000);
    expect(w.stats.connects).toBe(1);
  });

  it('the drain grace: a session opened before the change drains on the new grace', async () => {
    const client = res.client(harness.target);
    const a = await RawWorker.connect(res, client, { workerId: 'raw-a', slots: 1, queues: ['drain-q'] });
    expect(a.welcome['drainGraceMs']).toBe(5_000);
    const taskId = await submit(client, { queue: 'drain-q' });
    expect(await a.assignment()).toMatchObject({ taskId, attempt: 1 });
    await publish({ drainGraceMs: 300 });
    const b = await RawWorker.connect(res, client, { workerId: 'raw-b', slots: 1, queues: ['drain-q'] });
    expect(b.welcome['drainGraceMs']).toBe(300);
    const drainedAtMs = Date.now();
    a.send({ drain: { reason: 'deploy' } });
    // The old grace would hold the task 5 s (longer than assignment() waits); the new one re-runs it after 300 ms.
    expect(await b.assignment()).toMatchObject({ taskId, attempt: 2 });
    console.log(`drain grace 300 ms in force: task re-ran elsewhere ${Date.now() - drainedAtMs} ms after Drain`);
  });

  it('retry and attempt-timeout defaults: the next submit gets them, and a retry waits the new backoff', async () => {
    await publish({ defaultMaxAttempts: 7, defaultAttemptTimeoutMs: 4_321, backoff: { initialMs: 600_000, maxMs: 600_000, jitter: 0 } });
    const p = producer();
    let deadlineInMs = 0;
    await startWorker({
      queues: ['retry-q'],
      handler: (task) => {
        deadlineInMs = task.deadlineMs - Date.now();
        throw new Error('transient');
      },
    });
    const { taskId } = await p.submit({ queue: 'retry-q', payload: 'x' });
    await eventually(async () => (await p.get(taskId)).attempt === 2, 5_000, 'the first attempt to fail');
    const task = await p.get(taskId);
    expect(task.maxAttempts).toBe(7);
    expect(deadlineInMs).toBeGreaterThan(0);
    expect(deadlineInMs).toBeLessThanOrEqual(4_321);
    expect(task.state).toBe('PENDING');
    expect(task.notBeforeMs - Date.now()).toBeGreaterThan(500_000);
  });

  it('the zone spillover delay: a task for zone a waits for zone a, and spills at once when the delay drops to 0', async () => {
    await publish({ zoneSpilloverDelayMs: 600_000 });
    const p = producer();
    const w = await startWorker({ zone: 'b', queues: ['zone-q'] });
    const waiting = await p.submit({ queue: 'zone-q', payload: 'for a', preferredZone: 'a' });
    // A task without a zone preference goes through the same dispatch pass and completes.
    const free = await p.submit({ queue: 'zone-q', payload: 'anywhere' });
    await p.result(free.taskId);
    expect((await p.get(waiting.taskId)).state).toBe('PENDING');
    await publish({ zoneSpilloverDelayMs: 0 });
    await p.result(waiting.taskId);
    expect((await p.get(waiting.taskId)).state).toBe('COMPLETED');
    expect(w.stats.connects).toBe(1);
  });

  it('the slot limit: a running 4-slot worker runs one task at a time, then four again', async () => {
    await publish({ maxSlotsPerSession: 1 });
    const p = producer();
    let running = 0;
    let most = 0;
    const release: (() => void)[] = [];
    const w = await startWorker({
      slots: 4,
      queues: ['slot-q'],
      handler: () =>
        new Promise<string>((resolve) => {
          running += 1;
          most = Math.max(most, running);
          release.push(() => {
            running -= 1;
            resolve('ok');
          });
        }),
    });
    const ids = await Promise.all(Array.from({ length: 4 }, (_, i) => p.submit({ queue: 'slot-q', payload: `s${i}` })));
    await eventually(() => running === 1, 5_000, 'one task running');
    const pending = await Promise.all(ids.map(async ({ taskId }) => (await p.get(taskId)).state));
    expect(pending.filter((s) => s === 'PENDING')).toHaveLength(3);
    await publish({ maxSlotsPerSession: 10 });
    await eventually(() => running === 4, 5_000, 'all four running');
    for (const r of release.splice(0)) r();
    await Promise.all(ids.map(({ taskId }) => p.result(taskId)));
    expect(most).toBe(4);
    expect(w.stats.connects).toBe(1);
  });

  it('SLO thresholds per zone pair: the exported objectives change', async () => {
    expect(await metric('zonal_slo_p99_threshold_seconds{')).toContain('from_zone="*",to_zone="*"} 0.25');
    await publish({ slo: { defaultP99Ms: 300, pairs: { 'a->b': { p99Ms: 40 }, 'b->a': { p99Ms: 45 } } } });
    const text = await metric('zonal_slo_p99_threshold_seconds{');
    expect(text).toContain('from_zone="*",to_zone="*"} 0.3');
    expect(text).toContain('from_zone="a",to_zone="b"} 0.04');
    expect(text).toContain('from_zone="b",to_zone="a"} 0.045');
  });

  it('the log level changes at once', async () => {
    await publish({ logLevel: 'debug' });
    expect(currentLogLevel()).toBe('debug');
    await publish({ logLevel: 'warn' });
    expect(currentLogLevel()).toBe('warn');
  });

  it('counts every document and reports the version and publish-to-apply time', async () => {
    writeFileSync(file, 'version: 1\n');
    await eventually(() => harness.server.runtimeConfig.resultCounts.stale >= 1, 5_000, 'the stale document to be counted');
    writeFileSync(file, `version: ${version + 1}\nnot_a_key: true\n`);
    await eventually(() => harness.server.runtimeConfig.resultCounts.invalid >= 1, 5_000, 'the invalid document to be counted');
    expect(await metric('zonal_config_version ')).toBe(`zonal_config_version ${version}`);
    const updates = await metric('zonal_config_updates_total{');
    expect(updates).toContain(`result="applied"} ${version}`);
    expect(updates).toContain('result="stale"} 1');
    expect(updates).toContain('result="invalid"} 1');
    const count = Number(/zonal_config_publish_to_apply_seconds_count (\d+)/.exec(await metric('zonal_config_publish_to_apply_seconds_count'))?.[1]);
    expect(count).toBe(version - 1);
  });
});

describe('an SDK producer following a runtime config', () => {
  it('picks up the per-attempt deadline, attempts and breaker thresholds without a new channel', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'zonal-client-config-'));
    const file = path.join(dir, 'client.yaml');
    writeFileSync(file, stringify({ version: 1 }));
    writtenLongAgo(file);
    const config = new RuntimeConfig({ baseline: DEFAULT_BASELINE, source: new FileSource(file) });
    const levelAtStart = currentLogLevel();
    // Nothing listens on the target: every call fails with UNAVAILABLE.
    const p = new ProducerClient({ target: '127.0.0.1:1', call: { maxAttempts: 1, callTimeoutMs: 2_000 } });
    try {
      config.start();
      const stop = followRuntimeConfig(config, p);
      expect(p.callPolicy.callTimeoutMs).toBe(DEFAULT_BASELINE.call.callTimeoutMs);
      writeFileSync(file, stringify({ version: 2, call: { callTimeoutMs: 1_234, maxAttempts: 1 }, breaker: { volumeThreshold: 1, errorThresholdPercentage: 1 } }));
      await eventually(() => config.current.version === 2, 10_000, 'version 2');
      expect(p.callPolicy).toMatchObject({ callTimeoutMs: 1_234, maxAttempts: 1 });
      // The document says nothing about logLevel: the level the application runs at is left alone.
      expect(currentLogLevel()).toBe(levelAtStart);
      // With the default volume threshold (10) one failure would not open the circuit; now it does.
      await expect(p.get('t-1')).rejects.toMatchObject({ reason: 'UNAVAILABLE' });
      expect(p.circuitState()).toBe('OPEN');
      await expect(p.get('t-2')).rejects.toMatchObject({ reason: 'CIRCUIT_OPEN' });
      stop();
    } finally {
      p.close();
      await config.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the dispatcher's own breaker", () => {
  it('takes new thresholds live, and keeps its registration running', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'zonal-breaker-config-'));
    const file = path.join(dir, 'runtime.yaml');
    writeFileSync(file, stringify({ version: 1 }));
    const harness = await startHarness({ config: file, xdsAddress: '127.0.0.1:0' });
    try {
      const registration = harness.server.registration!;
      expect(registration.breakerOptions).toMatchObject({ volumeThreshold: 4, errorThresholdPercentage: 50 });
      writeFileSync(file, stringify({ version: 2, breaker: { volumeThreshold: 9, errorThresholdPercentage: 75, resetTimeoutMs: 1_500 } }));
      await eventually(() => harness.server.runtimeConfig.current.version === 2, 10_000, 'version 2');
      expect(registration.breakerOptions).toMatchObject({ volumeThreshold: 9, errorThresholdPercentage: 75, resetTimeoutMs: 1_500 });
      expect(registration.circuitState()).toBe('CLOSED');
    } finally {
      await harness.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
