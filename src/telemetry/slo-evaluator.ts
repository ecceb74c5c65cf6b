import { sloP95Ms, sloP99Ms, type SloThresholds } from '../config/slo-thresholds';
import type { PairSummary } from './latency-matrix';

/**
 * The built-in SLO check, pure: given each zone pair's dispatch latency
 * over the evaluation window and the objectives in force, which pairs start
 * or stop breaking their objective. A pair is judged only with at least
 * `minSamples` samples in the window; one that has fewer keeps its state
 * (a quiet pair neither breaches nor recovers on noise).
 *
 * A breach of a quantile starts when its value exceeds the objective, and
 * ends (a recovery) when it is back at or under it.
 */
export type SloQuantile = 'p99' | 'p95';

export interface SloTransition {
  kind: 'breach' | 'recovery';
  from: string;
  to: string;
  quantile: SloQuantile;
  valueMs: number;
  thresholdMs: number;
  count: number;
}

export interface SloState {
  /** "from->to|quantile" of every pair in breach. */
  readonly breaching: ReadonlySet<string>;
}

export const NO_BREACHES: SloState = { breaching: new Set() };

export function sloKey(from: string, to: string, quantile: SloQuantile): string {
  return `${from}->${to}|${quantile}`;
}

export function evaluateSlo(
  pairs: readonly PairSummary[],
  thresholds: SloThresholds,
  previous: SloState,
  minSamples: number,
): { state: SloState; transitions: SloTransition[] } {
  const breaching = new Set(previous.breaching);
  const transitions: SloTransition[] = [];
  for (const pair of pairs) {
    const checks: [SloQuantile, number | undefined, number | undefined][] = [
      ['p99', pair.p99Ms, sloP99Ms(thresholds, pair.from, pair.to)],
      ['p95', pair.p95Ms, sloP95Ms(thresholds, pair.from, pair.to)],
    ];
    for (const [quantile, valueMs, thresholdMs] of checks) {
      const key = sloKey(pair.from, pair.to, quantile);
      if (valueMs === undefined) continue;
      if (thresholdMs === undefined) {
        // The objective was removed: a breach of it is over, whatever the samples (thresholdMs 0 says why).
        if (breaching.delete(key)) transitions.push({ kind: 'recovery', from: pair.from, to: pair.to, quantile, valueMs, thresholdMs: 0, count: pair.count });
        continue;
      }
      if (pair.count < minSamples) continue;
      const over = valueMs > thresholdMs;
      if (over && !breaching.has(key)) {
        breaching.add(key);
        transitions.push({ kind: 'breach', from: pair.from, to: pair.to, quantile, valueMs, thresholdMs, count: pair.count });
      } else if (!over && breaching.has(key)) {
        breaching.delete(key);
        transitions.push({ kind: 'recovery', from: pair.from, to: pair.to, quantile, valueMs, thresholdMs, count: pair.count });
      }
    }
  }
  return { state: { breaching }, transitions };
}
