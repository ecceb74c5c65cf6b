import type { Breaker } from '../resilience/breaker';
import { CIRCUIT_STATE_VALUE } from './metric-names';

/** Label values of one series. */
export type MetricLabels = Readonly<Record<string, string>>;

/** The narrow gauge Zonal reports into; a prom-client Gauge fits as `{ set: (labels, v) => gauge.set(labels, v) }`. */
export interface Gauge {
  set(labels: MetricLabels, value: number): void;
}

/**
 * Where the SDK reports its metrics; every member is optional. Names, help
 * and labels are in METRICS (src/telemetry/metric-names.ts).
 */
export interface ClientMetrics {
  /** METRICS.clientCircuitState (`zonal_client_circuit_state`, label `target`). */
  circuitState?: Gauge;
}

/**
 * Reports a breaker's state into `gauge` now and after every change.
 * Returns the function that stops reporting.
 */
export function reportCircuitState(breaker: Breaker, gauge: Gauge | undefined, labels: MetricLabels): () => void {
  if (gauge === undefined) return () => undefined;
  gauge.set(labels, CIRCUIT_STATE_VALUE[breaker.state()]);
  return breaker.onStateChange((state) => gauge.set(labels, CIRCUIT_STATE_VALUE[state]));
}
