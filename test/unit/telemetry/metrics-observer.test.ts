import * as client from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { EngineEvent, TaskEvent } from '../../../src/core/task-events';
import { MAX_ZONE_LABELS } from '../../../src/telemetry/bounded-labels';
import { LATENCY_BUCKETS_SECONDS } from '../../../src/telemetry/latency-buckets';
import { METRICS } from '../../../src/telemetry/metric-names';
import { MetricsObserver } from '../../../src/telemetry/metrics-observer';

const T = 1_700_000_000_000;

type Kind = TaskEvent['kind'];

/** A task event with round defaults: queue q, producer zone-p, dispatcher zone-d, worker zone-w, created at T. */
function task<K extends Kind>(kind: K, extra: Partial<Extract<TaskEvent, { kind: K }>> = {}): TaskEvent {
  const base = {
    taskId: 't-1',
    queue: 'q',
    attempt: 1,
    atMs: T,
    createdMs: T,
    producerZone: 'zone-p',
    dispatcherZone: 'zone-d',
    workerZone: 'zone-w',
    traceparent: '',
    tracestate: '',
  };
  const defaults: Record<Kind, object> = {
    submitted: {},
    assigned: {},
    started: { assignedMs: T },
    finished: { outcome: 'COMPLETED', reason: '' },
    retried: { reason: 'HANDLER_FAILED' },
  };
  return { ...base, ...defaults[kind], kind, ...extra } as TaskEvent;
}

function setup(): { registry: client.Registry; observer: MetricsObserver } {
  const registry = new client.Registry();
  return { registry, observer: new MetricsObserver(registry) };
}

/** A sample as prom-client's get() returns it (histograms name each series: _bucket, _sum, _count). */
interface Sample {
  value: number;
  labels: Partial<Record<string, string | number>>;
  metricName?: string;
}

async function samples(registry: client.Registry, name: string): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  return (await metric.get()).values as Sample[];
}

/** The value of a counter (or a histogram's _count / _sum) with exactly these labels; 0 when absent. */
async function value(registry: client.Registry, name: string, labels: Record<string, string>, suffix = ''): Promise<number> {
  const values = await samples(registry, name);
  const match = values.find((v) => (suffix === '' || v.metricName === `${name}${suffix}`) && sameLabels(v.labels, labels));
  return match?.value ?? 0;
}

function sameLabels(a: Partial<Record<string, string | number>>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => String(a[k]) === b[k]);
}

/** Every label set a metric has values for (buckets left out). */
async function labelSets(registry: client.Registry, name: string): Promise<Record<string, string>[]> {
  const values = await samples(registry, name);
  const seen = new Map<string, Record<string, string>>();
  for (const v of values) {
    if (v.metricName !== undefined && v.metricName !== name && !v.metricName.endsWith('_count')) continue;
    const labels = Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)]));
    seen.set(JSON.stringify(labels), labels);
  }
  return [...seen.values()];
}

const PAIR = { producer_zone: 'zone-p', dispatcher_zone: 'zone-d', worker_zone: 'zone-w' };

describe('MetricsObserver: task counters by queue and zone', () => {
  it('counts submits by queue and producer zone', async () => {
    const { registry, observer } = setup();
    observer.onEvents([task('submitted'), task('submitted'), task('submitted', { queue: 'other-q' }), task('submitted', { producerZone: 'zone-x' })]);
    const name = METRICS.tasksSubmitted.name;
    expect(name).toBe('zonal_tasks_submitted_total');
    expect(await value(registry, name, { queue: 'q', zone: 'zone-p' })).toBe(2);
    expect(await value(registry, name, { queue: 'other-q', zone: 'zone-p' })).toBe(1);
    expect(await value(registry, name, { queue: 'q', zone: 'zone-x' })).toBe(1);
    const text = await registry.getSingleMetricAsString(name);
    expect(text).toContain('zonal_tasks_submitted_total{queue="q",zone="zone-p"} 2');
  });

  it('counts each outcome by queue and worker zone', async () => {
    const { registry, observer } = setup();
    observer.onEvents([
      task('finished', { outcome: 'COMPLETED' }),
      task('finished', { outcome: 'COMPLETED', workerZone: 'zone-v' }),
      task('finished', { outcome: 'FAILED', reason: 'HANDLER_FAILED' }),
      task('finished', { outcome: 'CANCELLED', reason: 'CANCELLED', workerZone: '' }),
      task('retried'),
      task('retried'),
    ]);
    expect(await value(registry, METRICS.tasksCompleted.name, { queue: 'q', zone: 'zone-w' })).toBe(1);
    expect(await value(registry, METRICS.tasksCompleted.name, { queue: 'q', zone: 'zone-v' })).toBe(1);
    expect(await value(registry, METRICS.tasksFailed.name, { queue: 'q', zone: 'zone-w' })).toBe(1);
    expect(await value(registry, METRICS.tasksCancelled.name, { queue: 'q', zone: '' })).toBe(1);
    expect(await value(registry, METRICS.tasksRetried.name, { queue: 'q', zone: 'zone-w' })).toBe(2);
    expect(await labelSets(registry, METRICS.tasksFailed.name)).toEqual([{ queue: 'q', zone: 'zone-w' }]);
  });

  it('does not count assigned or started events as outcomes', async () => {
    const { registry, observer } = setup();
    observer.onEvents([task('assigned'), task('started', { atMs: T + 5 })]);
    for (const def of [METRICS.tasksSubmitted, METRICS.tasksCompleted, METRICS.tasksFailed, METRICS.tasksRetried, METRICS.tasksCancelled]) {
      expect(await labelSets(registry, def.name)).toEqual([]);
    }
  });
});

describe('MetricsObserver: latency histograms', () => {
  it('observes the dispatch latency of attempt 1 `started` events only, in seconds, by the three zones', async () => {
    const { registry, observer } = setup();
    const name = METRICS.dispatchLatency.name;
    observer.onEvents([
      task('started', { atMs: T + 40, createdMs: T }),
      task('started', { atMs: T + 60, createdMs: T }),
      task('started', { attempt: 2, atMs: T + 9_000, createdMs: T }),
      task('assigned', { atMs: T + 9_000 }),
      task('finished', { atMs: T + 9_000 }),
    ]);
    expect(await value(registry, name, PAIR, '_count')).toBe(2);
    expect(await value(registry, name, PAIR, '_sum')).toBeCloseTo(0.1, 10);
    // 40 ms is at or under the 0.05 s bound, 60 ms only under 0.075 s.
    expect(await value(registry, name, { ...PAIR, le: '0.05' }, '_bucket')).toBe(1);
    expect(await value(registry, name, { ...PAIR, le: '0.075' }, '_bucket')).toBe(2);
  });

  it('never observes a negative dispatch latency (clock skew): it counts as 0', async () => {
    const { registry, observer } = setup();
    observer.onEvents([task('started', { atMs: T - 500, createdMs: T })]);
    expect(await value(registry, METRICS.dispatchLatency.name, PAIR, '_count')).toBe(1);
    expect(await value(registry, METRICS.dispatchLatency.name, PAIR, '_sum')).toBe(0);
  });

  it('uses the shared latency buckets', async () => {
    const { registry, observer } = setup();
    observer.onEvents([task('started')]);
    const values = await samples(registry, METRICS.dispatchLatency.name);
    const bounds = values.filter((v) => v.metricName?.endsWith('_bucket')).map((v) => v.labels.le);
    expect(bounds).toEqual([...LATENCY_BUCKETS_SECONDS, '+Inf']);
  });

  it('observes the completion latency (submit to COMPLETED) only for COMPLETED', async () => {
    const { registry, observer } = setup();
    const name = METRICS.completionLatency.name;
    observer.onEvents([
      task('finished', { outcome: 'COMPLETED', atMs: T + 1_500 }),
      task('finished', { outcome: 'FAILED', atMs: T + 9_000 }),
      task('finished', { outcome: 'CANCELLED', atMs: T + 9_000 }),
      task('started', { atMs: T + 9_000 }),
    ]);
    expect(await value(registry, name, PAIR, '_count')).toBe(1);
    expect(await value(registry, name, PAIR, '_sum')).toBeCloseTo(1.5, 10);
  });

  it('observes heartbeat RTT by dispatcher and worker zone, in seconds', async () => {
    const { registry, observer } = setup();
    const name = METRICS.streamRtt.name;
    observer.onEvents([
      { kind: 'rtt', dispatcherZone: 'zone-d', workerZone: 'zone-w', rttMs: 12, atMs: T },
      { kind: 'rtt', dispatcherZone: 'zone-d', workerZone: 'zone-w', rttMs: 8, atMs: T },
      { kind: 'rtt', dispatcherZone: 'zone-d', workerZone: 'zone-v', rttMs: 100, atMs: T },
    ]);
    expect(await value(registry, name, { dispatcher_zone: 'zone-d', worker_zone: 'zone-w' }, '_count')).toBe(2);
    expect(await value(registry, name, { dispatcher_zone: 'zone-d', worker_zone: 'zone-w' }, '_sum')).toBeCloseTo(0.02, 10);
    expect(await value(registry, name, { dispatcher_zone: 'zone-d', worker_zone: 'zone-v' }, '_sum')).toBeCloseTo(0.1, 10);
  });

  it('observes stream lifetime by worker zone and cause, in seconds', async () => {
    const { registry, observer } = setup();
    const name = METRICS.streamLifetime.name;
    observer.onEvents([
      { kind: 'sessionEnded', dispatcherZone: 'zone-d', workerZone: 'zone-w', cause: 'IDLE', lifetimeMs: 90_000, atMs: T },
      { kind: 'sessionEnded', dispatcherZone: 'zone-d', workerZone: 'zone-w', cause: 'DRAINED', lifetimeMs: 5_000, atMs: T },
    ]);
    expect(await value(registry, name, { worker_zone: 'zone-w', cause: 'IDLE' }, '_sum')).toBe(90);
    expect(await value(registry, name, { worker_zone: 'zone-w', cause: 'DRAINED' }, '_sum')).toBe(5);
    expect(await value(registry, name, { worker_zone: 'zone-w', cause: 'IDLE', le: '60' }, '_bucket')).toBe(0);
    expect(await value(registry, name, { worker_zone: 'zone-w', cause: 'IDLE', le: '300' }, '_bucket')).toBe(1);
  });
});

describe('MetricsObserver: refused updates', () => {
  it('counts refused updates by reason', async () => {
    const { registry, observer } = setup();
    const refused = (reason: string): EngineEvent => ({ kind: 'updateRefused', reason, dispatcherZone: 'zone-d', workerZone: 'zone-w', atMs: T });
    observer.onEvents([refused('SEQUENCE_GAP'), refused('SEQUENCE_GAP'), refused('FENCED')]);
    expect(await value(registry, METRICS.updatesRefused.name, { reason: 'SEQUENCE_GAP' })).toBe(2);
    expect(await value(registry, METRICS.updatesRefused.name, { reason: 'FENCED' })).toBe(1);
    expect(await registry.getSingleMetricAsString(METRICS.updatesRefused.name)).toContain('zonal_updates_refused_total{reason="SEQUENCE_GAP"} 2');
  });
});

describe('MetricsObserver: bounded labels', () => {
  it(`keeps the first ${MAX_ZONE_LABELS} distinct zones; later ones show as "other"`, async () => {
    const { registry, observer } = setup();
    const zones = Array.from({ length: MAX_ZONE_LABELS + 3 }, (_, i) => `zone-${i}`);
    observer.onEvents(zones.map((z) => task('submitted', { producerZone: z })));
    const name = METRICS.tasksSubmitted.name;
    for (const z of zones.slice(0, MAX_ZONE_LABELS)) expect(await value(registry, name, { queue: 'q', zone: z })).toBe(1);
    expect(await value(registry, name, { queue: 'q', zone: `zone-${MAX_ZONE_LABELS}` })).toBe(0);
    expect(await value(registry, name, { queue: 'q', zone: 'other' })).toBe(3);
    expect(await labelSets(registry, name)).toHaveLength(MAX_ZONE_LABELS + 1);
    // A zone kept before the limit is still kept after it.
    observer.onEvents([task('submitted', { producerZone: 'zone-0' })]);
    expect(await value(registry, name, { queue: 'q', zone: 'zone-0' })).toBe(2);
  });

  it('bounds worker and dispatcher zones of the histograms with the same table', async () => {
    const { registry, observer } = setup();
    observer.onEvents(Array.from({ length: MAX_ZONE_LABELS }, (_, i) => task('submitted', { producerZone: `zone-${i}` })));
    observer.onEvents([
      { kind: 'rtt', dispatcherZone: 'zone-0', workerZone: 'late-zone', rttMs: 1, atMs: T },
      task('started', { producerZone: 'zone-1', dispatcherZone: 'late-d', workerZone: 'late-w' }),
    ]);
    expect(await value(registry, METRICS.streamRtt.name, { dispatcher_zone: 'zone-0', worker_zone: 'other' }, '_count')).toBe(1);
    expect(await value(registry, METRICS.dispatchLatency.name, { producer_zone: 'zone-1', dispatcher_zone: 'other', worker_zone: 'other' }, '_count')).toBe(1);
  });
});

describe('MetricsObserver: registries', () => {
  it('registers only in the registry it is given (several dispatchers in one process)', async () => {
    const a = setup();
    const b = setup();
    a.observer.onEvents([task('submitted')]);
    expect(await value(a.registry, METRICS.tasksSubmitted.name, { queue: 'q', zone: 'zone-p' })).toBe(1);
    expect(await value(b.registry, METRICS.tasksSubmitted.name, { queue: 'q', zone: 'zone-p' })).toBe(0);
    expect(client.register.getSingleMetric(METRICS.tasksSubmitted.name)).toBeUndefined();
    const text = await a.registry.metrics();
    for (const def of [METRICS.tasksSubmitted, METRICS.dispatchLatency, METRICS.completionLatency, METRICS.streamRtt, METRICS.streamLifetime, METRICS.updatesRefused]) {
      expect(text).toContain(`# HELP ${def.name} `);
    }
  });
});
