import { sloP95Ms, sloP99Ms, type SloThresholds } from '../config/slo-thresholds';
import { NAME_PATTERN } from '../core/task-fields';
import { LATENCY_BUCKETS_MS } from '../telemetry/latency-buckets';
import { SLOT_MS, WINDOWS_MS, type LatencyMatrix, type Series, type WindowName } from '../telemetry/latency-matrix';
import { sloKey, type SloState } from '../telemetry/slo-evaluator';

/**
 * GET /api/heatmap: the zone x zone latency matrix the heatmap page draws,
 * and, with `from` and `to`, one pair's time x latency-bucket histogram.
 * The format is documented in docs/operations.md ("The heatmap page").
 */
export interface HeatmapQuery {
  metric: 'dispatch' | 'rtt';
  /** Rows by the producer's zone or by the dispatcher's (rtt: always the dispatcher's). */
  rows: 'producer' | 'dispatcher';
  quantile: 'p50' | 'p95' | 'p99';
  window: WindowName;
  from?: string;
  to?: string;
}

const QUANTILES = { p50: 0.5, p95: 0.95, p99: 0.99 } as const;

export class HeatmapQueryError extends Error {}

/** Parses the query string; an unknown value is a 400 that names the allowed ones. */
export function parseHeatmapQuery(search: URLSearchParams): HeatmapQuery {
  for (const name of new Set(search.keys())) {
    if (search.getAll(name).length > 1) throw new HeatmapQueryError(`${name.slice(0, 40)} is given more than once`);
  }
  const pick = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const value = search.get(name);
    if (value === null || value === '') return fallback;
    if (!(allowed as readonly string[]).includes(value)) throw new HeatmapQueryError(`${name} must be one of ${allowed.join(', ')}, got "${value.slice(0, 40)}"`);
    return value as T;
  };
  const metric = pick('metric', ['dispatch', 'rtt'] as const, 'dispatch');
  // Checked for rtt too (where it is always dispatcher), so a typo is never silently ignored.
  const rows = pick('rows', ['producer', 'dispatcher'] as const, 'producer');
  const query: HeatmapQuery = {
    metric,
    rows: metric === 'rtt' ? 'dispatcher' : rows,
    quantile: pick('quantile', ['p50', 'p95', 'p99'] as const, 'p99'),
    window: pick('window', Object.keys(WINDOWS_MS) as WindowName[], '5m'),
  };
  const from = search.get('from');
  const to = search.get('to');
  if ((from === null) !== (to === null)) throw new HeatmapQueryError('from and to go together: both, or neither');
  if (from !== null && to !== null) {
    // A zone the producer did not name is "" (allowed); otherwise a zone name as everywhere else.
    for (const zone of [from, to]) if (zone !== '' && !NAME_PATTERN.test(zone)) throw new HeatmapQueryError(`from and to are zone names (${NAME_PATTERN}), got "${zone.slice(0, 40)}"`);
    query.from = from;
    query.to = to;
  }
  return query;
}

export interface HeatmapSources {
  matrix: LatencyMatrix;
  slo: () => { thresholds: SloThresholds; state: SloState };
  /** This dispatcher, and the others whose rows are merged in. */
  dispatchers: () => { id: string; zone: string; self: boolean }[];
  nowMs: () => number;
}

export interface HeatmapCell {
  from: string;
  to: string;
  count: number;
  /** The asked quantile in ms (null without samples). */
  valueMs: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  /** The objective for the asked quantile (dispatch by producer zone, p95/p99 only), else null. */
  thresholdMs: number | null;
  /** The built-in SLO check has this pair in breach (dispatch by producer zone only). */
  breach: boolean;
}

export function heatmapResponse(sources: HeatmapSources, query: HeatmapQuery): object {
  const nowMs = sources.nowMs();
  const windowMs = WINDOWS_MS[query.window];
  const series: Series = query.metric === 'rtt' ? 'rtt' : query.rows === 'producer' ? 'dispatch.producer' : 'dispatch.dispatcher';
  const { thresholds, state } = sources.slo();
  const judged = series === 'dispatch.producer';
  const cells: HeatmapCell[] = sources.matrix.summary(series, windowMs, QUANTILES[query.quantile], nowMs).map((p) => {
    // Objectives are per producer zone -> worker zone: other rows have none.
    const thresholdMs = !judged ? undefined : query.quantile === 'p99' ? sloP99Ms(thresholds, p.from, p.to) : query.quantile === 'p95' ? sloP95Ms(thresholds, p.from, p.to) : undefined;
    return {
      from: p.from,
      to: p.to,
      count: p.count,
      valueMs: p.valueMs ?? null,
      p50Ms: p.p50Ms ?? null,
      p95Ms: p.p95Ms ?? null,
      p99Ms: p.p99Ms ?? null,
      thresholdMs: thresholdMs ?? null,
      breach: judged && (state.breaching.has(sloKey(p.from, p.to, 'p99')) || state.breaching.has(sloKey(p.from, p.to, 'p95'))),
    };
  });
  const rowZones = [...new Set(cells.map((c) => c.from))].sort();
  const columnZones = [...new Set(cells.map((c) => c.to))].sort();
  const out: Record<string, unknown> = {
    metric: query.metric,
    rows: query.rows,
    quantile: query.quantile,
    window: query.window,
    windowMs,
    generatedAtMs: nowMs,
    dispatchers: sources.dispatchers(),
    rowZones,
    columnZones,
    cells,
    bucketsMs: LATENCY_BUCKETS_MS,
  };
  if (query.from !== undefined && query.to !== undefined) {
    out['pair'] = { from: query.from, to: query.to, slotMs: SLOT_MS, slots: sources.matrix.timeline(series, query.from, query.to, windowMs, nowMs) };
  }
  return out;
}
