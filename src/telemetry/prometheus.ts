import * as client from 'prom-client';
import type { RuntimeConfig } from '../config/runtime-config';
import { sloPairs } from '../config/slo-thresholds';
import { CIRCUIT_STATE_VALUE, METRICS } from './metric-names';

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
  controlPlaneCircuit?: () => keyof typeof CIRCUIT_STATE_VALUE;
  /** NACKs seen by the embedded control plane, if any. */
  xdsNacks?: () => number;
}

/**
 * The dispatcher's Prometheus registry. Every value is read from the
 * dispatcher at scrape time, so nothing on the hot path pays for metrics.
 * Names come from metric-names.ts.
 */
export function createDispatcherRegistry(sources: MetricSources): client.Registry {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'zonal_process_' });
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
      if (circuit !== undefined) g.set({ dependency: 'control-plane' }, CIRCUIT_STATE_VALUE[circuit()]);
    });
  }
  const config = sources.runtimeConfig;
  if (config !== undefined) {
    gauge(METRICS.configVersion, (g) => g.set(config.current.version));
    counter(METRICS.configUpdates, (c) => {
      for (const [result, n] of Object.entries(config.resultCounts)) c.inc({ result }, n);
    });
    gauge(METRICS.sloP99Threshold, (g) => {
      g.reset();
      const slo = config.current.slo;
      g.set({ from_zone: '*', to_zone: '*' }, slo.defaultP99Ms / 1000);
      for (const { from, to, p99Ms } of sloPairs(slo)) g.set({ from_zone: from, to_zone: to }, p99Ms / 1000);
    });
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
  if (nacks !== undefined) counter(METRICS.xdsNacks, (c) => c.inc(nacks()));
  return registry;
}
