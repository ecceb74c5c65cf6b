/**
 * Latency objectives per zone pair: the p99 a call from one zone to another
 * should stay under. A pair is written "from->to" (e.g. "zone-a->zone-b");
 * a pair that is not listed uses `defaultP99Ms`. The thresholds are exported
 * as the gauge zonal_slo_p99_threshold_seconds so alert rules compare
 * measured latency against the value in force, and they change live.
 */
export interface SloThresholds {
  defaultP99Ms: number;
  /** Optional p95 objective for pairs that do not list one (absent: p95 is not checked). */
  defaultP95Ms?: number;
  pairs: Record<string, { p99Ms: number; p95Ms?: number }>;
}

export const DEFAULT_SLO_THRESHOLDS: SloThresholds = { defaultP99Ms: 250, pairs: {} };

const PAIR = /^([A-Za-z0-9._-]+)->([A-Za-z0-9._-]+)$/;
const MAX_P99_MS = 600_000;

function checkP99(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 1 || value > MAX_P99_MS) throw new RangeError(`${name} must be between 1 and ${MAX_P99_MS}, got ${value}`);
}

export function compileSloThresholds(input: Partial<SloThresholds> = {}): SloThresholds {
  const out: SloThresholds = { defaultP99Ms: input.defaultP99Ms ?? DEFAULT_SLO_THRESHOLDS.defaultP99Ms, pairs: {} };
  checkP99('slo.defaultP99Ms', out.defaultP99Ms);
  if (input.defaultP95Ms !== undefined) {
    checkP99('slo.defaultP95Ms', input.defaultP95Ms);
    out.defaultP95Ms = input.defaultP95Ms;
  }
  for (const [pair, threshold] of Object.entries(input.pairs ?? {})) {
    if (!PAIR.test(pair)) throw new RangeError(`slo.pairs key "${pair}" must look like "from-zone->to-zone" (letters, digits, . _ -)`);
    checkP99(`slo.pairs["${pair}"].p99Ms`, threshold.p99Ms);
    out.pairs[pair] = { p99Ms: threshold.p99Ms };
    if (threshold.p95Ms !== undefined) {
      checkP99(`slo.pairs["${pair}"].p95Ms`, threshold.p95Ms);
      out.pairs[pair].p95Ms = threshold.p95Ms;
    }
  }
  return out;
}

/** The p95 objective for calls from zone `from` to zone `to`, undefined when none is set. */
export function sloP95Ms(thresholds: SloThresholds, from: string, to: string): number | undefined {
  return thresholds.pairs[`${from}->${to}`]?.p95Ms ?? thresholds.defaultP95Ms;
}

/** The p99 objective for calls from zone `from` to zone `to`. */
export function sloP99Ms(thresholds: SloThresholds, from: string, to: string): number {
  return thresholds.pairs[`${from}->${to}`]?.p99Ms ?? thresholds.defaultP99Ms;
}

/** Every listed pair, split into its zones (for metrics and pages). */
export function sloPairs(thresholds: SloThresholds): { from: string; to: string; p99Ms: number }[] {
  return Object.entries(thresholds.pairs).map(([pair, { p99Ms }]) => {
    const [, from = '', to = ''] = PAIR.exec(pair) ?? [];
    return { from, to, p99Ms };
  });
}
