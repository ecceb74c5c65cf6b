import * as client from 'prom-client';
import type { RuntimeConfig } from '../config/runtime-config';
import { sloP95Ms, sloP99Ms, sloPairs } from '../config/slo-thresholds';
import { CIRCUIT_STATE_VALUE, METRICS } from './metric-names';
import { BoundedLabels, MAX_QUEUE_LABELS, MAX_ZONE_LABELS } from './bounded-labels';
import { MetricsObserver } from './metrics-observer';
import type { SloQuantile } from './slo-evaluator';

/** The dispatcher's counts the registry reads at scrape time (Dispatcher.stats() has them). */
export interface DispatcherCounts {
  sessions: number;
  tasksInMemory: number;
  heldTasks: number;
  heartbeatsSent: number;
  heartbeatOverBudget: boolean;
  commits: number;
  recordsCommitted: number;
  sessionsClosedByCause: Partial<Record<string, number>>;
  peers: number;
  tasksSwept: number;
  tasksLost: number;
}

export interface MetricSources {
  /** Read at every scrape. */
  stats: () => DispatcherCounts;
  /** State of the breaker guarding the task store. */
  storeCircuit?: () => keyof typeof CIRCUIT_STATE_VALUE;
  /** The runtime config, if the registry should report it. */
  runtimeConfig?: RuntimeConfig;
  /** State of the breaker guarding the control-plane registration, if any. */
  controlPlaneCircuit?: () => keyof typeof CIRCUIT_STATE_VALUE | undefined;
  /** NACKs seen by the embedded control plane; undefined while none runs. */
  xdsNacks?: () => number | undefined;
  /** Pushes and ACKs of the embedded control plane; undefined while none runs. */
  xdsCounts?: () => { pushes: number; acks: number } | undefined;
  /** Ready tasks in the store by queue and zone (read at most every READY_DEPTH_CACHE_MS). */
  readyDepth?: () => Promise<{ queue: string; zone: string; count: number }[]>;
  /** Mean heartbeat interval of this dispatcher's streams, by worker zone. */
  keepaliveIntervals?: () => { zone: string; meanMs: number; sessions: number }[];
  /** The SLO check: pairs seen (for thresholds) and those in breach. */
  slo?: () => { pairsSeen: { from: string; to: string }[]; breaching: { from: string; to: string; quantile: SloQuantile }[]; webhookFailures: number };
  /** Errors thrown by observers. */
  observerErrors?: () => number;
  /** The access policy's refusals so far (src/security/access-guard.ts). */
  refusals?: () => readonly { reason: string; method: string; count: number }[];
}

/** The store is asked for ready depth at most this often, whatever the scrape rate. */
export const READY_DEPTH_CACHE_MS = 5_000;

export interface DispatcherRegistry {
  registry: client.Registry;
  /** Feed it the engine's events (Dispatcher `observers`). */
  observer: MetricsObserver;
}

/**
 * The dispatcher's Prometheus registry. Every value is read from the
 * dispatcher at scrape time, so nothing on the hot path pays for metrics.
 * Names come from metric-names.ts.
 */
export function createDispatcherRegistry(sources: MetricSources): DispatcherRegistry {
  const registry = new client.Registry();
  // Standard names (process_*, nodejs_*), as every Node dashboard expects.
  client.collectDefaultMetrics({ register: registry });
  const stats = sources.stats;
  const gauge = (def: { name: string; help: string; labelNames: readonly string[] }, read: (g: client.Gauge) => void): void => {
    new client.Gauge({
      name: def.name,
      help: def.help,
      labelNames: [...def.labelNames],
      // Only this registry: several dispatchers (tests) may live in one process.
      registers: [registry],
      collect() {
        read(this);
      },
    });
  };
  // Counters read from cumulative totals are exposed with counter semantics (reset, then the total).
  const counter = (def: { name: string; help: string; labelNames: readonly string[] }, read: (c: client.Counter) => void): void => {
    new client.Counter({
      name: def.name,
      help: def.help,
      labelNames: [...def.labelNames],
      registers: [registry],
      collect() {
        this.reset();
        read(this);
      },
    });
  };
  gauge(METRICS.sessions, (g) => g.set(stats().sessions));
  gauge(METRICS.tasksInMemory, (g) => g.set(stats().tasksInMemory));
  gauge(METRICS.heldTasks, (g) => g.set(stats().heldTasks));
  gauge(METRICS.peerDispatchers, (g) => g.set(stats().peers));
  gauge(METRICS.heartbeatOverBudget, (g) => g.set(stats().heartbeatOverBudget ? 1 : 0));
  counter(METRICS.heartbeatsSent, (c) => c.inc(stats().heartbeatsSent));
  counter(METRICS.storeCommits, (c) => c.inc(stats().commits));
  counter(METRICS.storeRecords, (c) => c.inc(stats().recordsCommitted));
  counter(METRICS.tasksSwept, (c) => c.inc(stats().tasksSwept));
  counter(METRICS.tasksLost, (c) => c.inc(stats().tasksLost));
  counter(METRICS.sessionsClosed, (c) => {
    for (const [cause, n] of Object.entries(stats().sessionsClosedByCause)) c.inc({ cause }, n ?? 0);
  });
  const storeCircuit = sources.storeCircuit;
  const circuit = sources.controlPlaneCircuit;
  if (storeCircuit !== undefined || circuit !== undefined) {
    gauge(METRICS.dependencyCircuitState, (g) => {
      if (storeCircuit !== undefined) g.set({ dependency: 'store' }, CIRCUIT_STATE_VALUE[storeCircuit()]);
      const state = circuit?.();
      if (state !== undefined) g.set({ dependency: 'control-plane' }, CIRCUIT_STATE_VALUE[state]);
    });
  }
  const config = sources.runtimeConfig;
  if (config !== undefined) {
    gauge(METRICS.configVersion, (g) => g.set(config.current.version));
    counter(METRICS.configUpdates, (c) => {
      for (const [result, n] of Object.entries(config.resultCounts)) c.inc({ result }, n);
    });
    // Every pair listed or seen, so an alert rule joins measured latency with its objective directly.
    const pairs = (): { from: string; to: string }[] => {
      const seen = new Map<string, { from: string; to: string }>();
      for (const p of [...sloPairs(config.current.slo), ...(sources.slo?.().pairsSeen ?? [])]) seen.set(`${p.from}->${p.to}`, { from: p.from, to: p.to });
      return [...seen.values()];
    };
    gauge(METRICS.sloP99Threshold, (g) => {
      g.reset();
      const slo = config.current.slo;
      g.set({ from_zone: '*', to_zone: '*' }, slo.defaultP99Ms / 1000);
      for (const { from, to } of pairs()) g.set({ from_zone: from, to_zone: to }, sloP99Ms(slo, from, to) / 1000);
    });
    gauge(METRICS.sloP95Threshold, (g) => {
      g.reset();
      const slo = config.current.slo;
      if (slo.defaultP95Ms !== undefined) g.set({ from_zone: '*', to_zone: '*' }, slo.defaultP95Ms / 1000);
      for (const { from, to } of pairs()) {
        const p95Ms = sloP95Ms(slo, from, to);
        if (p95Ms !== undefined) g.set({ from_zone: from, to_zone: to }, p95Ms / 1000);
      }
    });
    const slo = sources.slo;
    if (slo !== undefined) {
      gauge(METRICS.sloBreach, (g) => {
        g.reset();
        const { pairsSeen, breaching } = slo();
        for (const { from, to } of pairsSeen) {
          g.set({ from_zone: from, to_zone: to, quantile: 'p99' }, 0);
          if (sloP95Ms(config.current.slo, from, to) !== undefined) g.set({ from_zone: from, to_zone: to, quantile: 'p95' }, 0);
        }
        for (const { from, to, quantile } of breaching) g.set({ from_zone: from, to_zone: to, quantile }, 1);
      });
      counter(METRICS.sloWebhookFailures, (c) => c.inc(slo().webhookFailures));
    }
    const delay = new client.Histogram({
      name: METRICS.configPublishToApply.name,
      help: METRICS.configPublishToApply.help,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
    config.onDecision((_decision, _origin, publishToApplyMs) => {
      if (publishToApplyMs !== undefined) delay.observe(publishToApplyMs / 1000);
    });
  }
  const nacks = sources.xdsNacks;
  if (nacks !== undefined) {
    counter(METRICS.xdsNacks, (c) => {
      const n = nacks();
      if (n !== undefined) c.inc(n);
    });
  }
  const xds = sources.xdsCounts;
  if (xds !== undefined) {
    counter(METRICS.xdsPushes, (c) => {
      const n = xds();
      if (n !== undefined) c.inc(n.pushes);
    });
    counter(METRICS.xdsAcks, (c) => {
      const n = xds();
      if (n !== undefined) c.inc(n.acks);
    });
  }
  const intervals = sources.keepaliveIntervals;
  if (intervals !== undefined) {
    const workerZones = new BoundedLabels(MAX_ZONE_LABELS);
    gauge(METRICS.keepaliveInterval, (g) => {
      g.reset();
      // Zones come from workers' Hello: bounded, and the rest averaged under "other".
      const sums = new Map<string, { totalMs: number; sessions: number }>();
      for (const { zone, meanMs, sessions } of intervals()) {
        const label = workerZones.value(zone);
        const sum = sums.get(label) ?? { totalMs: 0, sessions: 0 };
        sum.totalMs += meanMs * sessions;
        sum.sessions += sessions;
        sums.set(label, sum);
      }
      for (const [zone, { totalMs, sessions }] of sums) g.set({ worker_zone: zone }, totalMs / sessions / 1000);
    });
  }
  const errors = sources.observerErrors;
  if (errors !== undefined) counter(METRICS.observerErrors, (c) => c.inc(errors()));
  const refusals = sources.refusals;
  // Reasons and methods are two fixed lists: the labels are bounded.
  if (refusals !== undefined) counter(METRICS.refusals, (c) => refusals().forEach(({ reason, method, count }) => c.inc({ reason, method }, count)));
  const readyDepth = sources.readyDepth;
  if (readyDepth !== undefined) {
    let cached: { atMs: number; rows: Promise<{ queue: string; zone: string; count: number }[]> } | undefined;
    const queues = new BoundedLabels(MAX_QUEUE_LABELS);
    const zones = new BoundedLabels(MAX_ZONE_LABELS);
    /** Every (queue, zone) reported so far: bounded by the label budgets above. */
    const seen = new Map<string, { queue: string; zone: string }>();
    new client.Gauge({
      name: METRICS.queueReady.name,
      help: METRICS.queueReady.help,
      labelNames: [...METRICS.queueReady.labelNames],
      registers: [registry],
      async collect() {
        const now = Date.now();
        if (cached === undefined || now - cached.atMs >= READY_DEPTH_CACHE_MS) cached = { atMs: now, rows: readyDepth() };
        const current = cached;
        // A failed read (the store is down) reports nothing this scrape (unknown, not 0) and is asked again at the next one.
        const rows = await current.rows.catch(() => {
          if (cached === current) cached = undefined;
          return undefined;
        });
        this.reset();
        if (rows === undefined) return;
        // Queues and zones come from producers: bounded like every other label (the rest add up under "other").
        const sums = new Map<string, { queue: string; zone: string; count: number }>();
        for (const row of rows) {
          const queue = queues.value(row.queue);
          const zone = zones.value(row.zone);
          const key = `${queue}\u0000${zone}`;
          const sum = sums.get(key) ?? { queue, zone, count: 0 };
          sum.count += row.count;
          sums.set(key, sum);
        }
        for (const { queue, zone, count } of sums.values()) this.set({ queue, zone }, count);
        // A queue and zone seen once stays at 0 when its backlog is gone, rather than vanishing: an autoscaler
        // (an HPA through prometheus-adapter) reads a missing series as an error and then never scales down.
        for (const [key, labels] of seen) if (!sums.has(key)) this.set(labels, 0);
        for (const [key, { queue, zone }] of sums) if (!seen.has(key)) seen.set(key, { queue, zone });
      },
    });
  }
  return { registry, observer: new MetricsObserver(registry) };
}
