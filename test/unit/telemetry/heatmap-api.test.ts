import { describe, expect, it } from 'vitest';
import { HeatmapQueryError, heatmapResponse, parseHeatmapQuery, type HeatmapCell, type HeatmapQuery, type HeatmapSources } from '../../../src/admin/heatmap-api';
import { compileSloThresholds, type SloThresholds } from '../../../src/config/slo-thresholds';
import { LATENCY_BUCKETS_MS } from '../../../src/telemetry/latency-buckets';
import { LatencyMatrix, SLOT_MS, WINDOWS_MS } from '../../../src/telemetry/latency-matrix';
import { NO_BREACHES, sloKey, type SloState } from '../../../src/telemetry/slo-evaluator';

const T = 1_700_000_000_000;

function parse(search: string): HeatmapQuery {
  return parseHeatmapQuery(new URLSearchParams(search));
}

function parseError(search: string): HeatmapQueryError {
  try {
    parse(search);
  } catch (err) {
    expect(err).toBeInstanceOf(HeatmapQueryError);
    return err as HeatmapQueryError;
  }
  throw new Error(`"${search}" parsed without an error`);
}

describe('parseHeatmapQuery', () => {
  it('defaults to dispatch latency by producer zone, p99, over 5 minutes, without a pair', () => {
    expect(parse('')).toEqual({ metric: 'dispatch', rows: 'producer', quantile: 'p99', window: '5m' });
    expect(parse('metric=&rows=&quantile=&window=')).toEqual({ metric: 'dispatch', rows: 'producer', quantile: 'p99', window: '5m' });
  });

  it('takes every allowed value', () => {
    expect(parse('metric=dispatch&rows=dispatcher&quantile=p50&window=1m')).toEqual({ metric: 'dispatch', rows: 'dispatcher', quantile: 'p50', window: '1m' });
    expect(parse('quantile=p95&window=1h')).toMatchObject({ quantile: 'p95', window: '1h' });
  });

  it('rtt always has dispatcher rows (whatever rows says)', () => {
    expect(parse('metric=rtt')).toMatchObject({ metric: 'rtt', rows: 'dispatcher' });
    expect(parse('metric=rtt&rows=producer')).toMatchObject({ metric: 'rtt', rows: 'dispatcher' });
  });

  it('refuses an unknown value with an error naming the allowed ones', () => {
    expect(parseError('metric=cpu').message).toBe('metric must be one of dispatch, rtt, got "cpu"');
    expect(parseError('rows=queue').message).toBe('rows must be one of producer, dispatcher, got "queue"');
    expect(parseError('quantile=p90').message).toBe('quantile must be one of p50, p95, p99, got "p90"');
    expect(parseError('window=2m').message).toBe('window must be one of 1m, 5m, 1h, got "2m"');
    expect(parseError('quantile=P99').message).toContain('p50, p95, p99');
  });

  it('cuts a long bad value in the error to 40 characters', () => {
    const message = parseError(`window=${'x'.repeat(500)}`).message;
    expect(message).toBe(`window must be one of 1m, 5m, 1h, got "${'x'.repeat(40)}"`);
  });

  it('from and to go together', () => {
    expect(parseError('from=zone-a').message).toBe('from and to go together: both, or neither');
    expect(parseError('to=zone-b').message).toBe('from and to go together: both, or neither');
    expect(parse('from=zone-a&to=zone-b')).toEqual({ metric: 'dispatch', rows: 'producer', quantile: 'p99', window: '5m', from: 'zone-a', to: 'zone-b' });
  });

  it('accepts the empty zone (a producer that did not say) as from or to', () => {
    expect(parse('from=&to=zone-b')).toMatchObject({ from: '', to: 'zone-b' });
  });

  it('refuses what is not a zone name (over 128 characters, control characters), a repeated parameter, and a bad rows even for rtt', () => {
    expect(parse(`from=${'a'.repeat(128)}&to=b`).from).toHaveLength(128);
    expect(parse('from=&to=b').from).toBe('');
    expect(parseError(`from=${'a'.repeat(129)}&to=b`).message).toMatch(/^from and to are zone names/);
    expect(parseError(`from=a&to=${'b'.repeat(129)}`)).toBeInstanceOf(HeatmapQueryError);
    expect(parseError('from=%00&to=%0a')).toBeInstanceOf(HeatmapQueryError);
    expect(parseError('metric=dispatch&metric=bogus').message).toBe('metric is given more than once');
    expect(parseError('metric=rtt&rows=bogus').message).toMatch(/^rows must be one of producer, dispatcher/);
  });

  it('HeatmapQueryError is an Error', () => {
    expect(parseError('metric=x')).toBeInstanceOf(Error);
  });
});

class Sources implements HeatmapSources {
  readonly matrix = new LatencyMatrix();
  thresholds: SloThresholds = compileSloThresholds({ defaultP99Ms: 100, pairs: { 'zone-a->zone-c': { p99Ms: 500, p95Ms: 200 } } });
  state: SloState = NO_BREACHES;
  now = T + 5_000;
  slo = (): { thresholds: SloThresholds; state: SloState } => ({ thresholds: this.thresholds, state: this.state });
  dispatchers = (): { id: string; zone: string; self: boolean }[] => [
    { id: 'dispatcher-1', zone: 'zone-d', self: true },
    { id: 'dispatcher-2', zone: 'zone-e', self: false },
  ];
  nowMs = (): number => this.now;

  /** Samples of every series between these zones. */
  fill(): void {
    const at = T;
    for (const [from, to, ms] of [
      ['zone-b', 'zone-a', 10],
      ['zone-a', 'zone-c', 300],
      ['zone-a', 'zone-b', 1],
    ] as const) {
      for (let i = 0; i < 4; i++) this.matrix.record('dispatch.producer', from, to, ms, at);
    }
    this.matrix.record('dispatch.dispatcher', 'zone-d', 'zone-b', 20, at);
    this.matrix.record('rtt', 'zone-d', 'zone-a', 2, at);
    this.matrix.record('rtt', 'zone-e', 'zone-a', 2, at);
  }
}

function response(sources: Sources, search: string): Record<string, unknown> & { cells: HeatmapCell[] } {
  return heatmapResponse(sources, parse(search)) as Record<string, unknown> & { cells: HeatmapCell[] };
}

describe('heatmapResponse', () => {
  it('answers the query, the window, the time, the dispatchers, sorted zones, cells and the bucket bounds', () => {
    const s = new Sources();
    s.fill();
    const r = response(s, '');
    expect(Object.keys(r).sort()).toEqual(['bucketsMs', 'cells', 'columnZones', 'dispatchers', 'generatedAtMs', 'metric', 'quantile', 'rowZones', 'rows', 'window', 'windowMs']);
    expect(r).toMatchObject({ metric: 'dispatch', rows: 'producer', quantile: 'p99', window: '5m', windowMs: WINDOWS_MS['5m'], generatedAtMs: T + 5_000 });
    expect(r['dispatchers']).toEqual(s.dispatchers());
    expect(r['rowZones']).toEqual(['zone-a', 'zone-b']);
    expect(r['columnZones']).toEqual(['zone-a', 'zone-b', 'zone-c']);
    expect(r['bucketsMs']).toEqual(LATENCY_BUCKETS_MS);
    expect(r.cells.map((c) => `${c.from}->${c.to}`)).toEqual(['zone-a->zone-b', 'zone-a->zone-c', 'zone-b->zone-a']);
  });

  it('gives each cell its count, quantiles and the p99 objective for dispatch p99', () => {
    const s = new Sources();
    s.fill();
    const summary = s.matrix.summary('dispatch.producer', WINDOWS_MS['5m'], 0.99, s.now);
    const cells = response(s, 'quantile=p99').cells;
    cells.forEach((cell, i) => {
      const p = summary[i]!;
      expect(cell).toEqual({ from: p.from, to: p.to, count: 4, valueMs: p.p99Ms, p50Ms: p.p50Ms, p95Ms: p.p95Ms, p99Ms: p.p99Ms, thresholdMs: cell.to === 'zone-c' ? 500 : 100, breach: false });
    });
  });

  it('the asked quantile is valueMs; p95 has the p95 objective (null where none is set); p50 has none', () => {
    const s = new Sources();
    s.fill();
    const p95 = response(s, 'quantile=p95').cells;
    expect(p95.map((c) => [c.to, c.valueMs === c.p95Ms, c.thresholdMs])).toEqual([
      ['zone-b', true, null],
      ['zone-c', true, 200],
      ['zone-a', true, null],
    ]);
    s.thresholds = compileSloThresholds({ defaultP99Ms: 100, defaultP95Ms: 60 });
    expect(response(s, 'quantile=p95').cells.map((c) => c.thresholdMs)).toEqual([60, 60, 60]);
    const p50 = response(s, 'quantile=p50').cells;
    expect(p50.every((c) => c.thresholdMs === null && c.valueMs === c.p50Ms)).toBe(true);
  });

  it('rows=dispatcher reads the dispatch latency by dispatcher zone, with no objective (objectives are per producer zone)', () => {
    const s = new Sources();
    s.fill();
    const r = response(s, 'rows=dispatcher');
    expect(r).toMatchObject({ rows: 'dispatcher', rowZones: ['zone-d'], columnZones: ['zone-b'] });
    expect(r.cells).toMatchObject([{ from: 'zone-d', to: 'zone-b', count: 1, thresholdMs: null }]);
  });

  it('rtt cells have no objective', () => {
    const s = new Sources();
    s.fill();
    const r = response(s, 'metric=rtt&quantile=p99');
    expect(r).toMatchObject({ metric: 'rtt', rows: 'dispatcher', rowZones: ['zone-d', 'zone-e'], columnZones: ['zone-a'] });
    expect(r.cells.map((c) => [c.from, c.to, c.count, c.thresholdMs])).toEqual([
      ['zone-d', 'zone-a', 1, null],
      ['zone-e', 'zone-a', 1, null],
    ]);
  });

  it('flags a cell in breach from the SLO state, for dispatch by producer zone only', () => {
    const s = new Sources();
    s.fill();
    s.matrix.record('dispatch.dispatcher', 'zone-a', 'zone-c', 1, T);
    s.matrix.record('rtt', 'zone-a', 'zone-c', 1, T);
    s.state = { breaching: new Set([sloKey('zone-a', 'zone-c', 'p99'), sloKey('zone-b', 'zone-a', 'p95')]) };
    const byProducer = response(s, '').cells;
    expect(byProducer.filter((c) => c.breach).map((c) => `${c.from}->${c.to}`)).toEqual(['zone-a->zone-c', 'zone-b->zone-a']);
    // The breach flag does not depend on the quantile shown.
    expect(response(s, 'quantile=p50').cells.filter((c) => c.breach)).toHaveLength(2);
    const byDispatcher = response(s, 'rows=dispatcher').cells;
    expect(byDispatcher.find((c) => c.from === 'zone-a' && c.to === 'zone-c')!.breach).toBe(false);
    expect(response(s, 'metric=rtt').cells.every((c) => !c.breach)).toBe(true);
  });

  it('only counts the asked window', () => {
    const s = new Sources();
    s.fill();
    s.now = T + WINDOWS_MS['1m'] + SLOT_MS;
    expect(response(s, 'window=1m').cells).toEqual([]);
    expect(response(s, 'window=5m').cells).toHaveLength(3);
  });

  it('is empty without samples', () => {
    const r = response(new Sources(), '');
    expect(r).toMatchObject({ rowZones: [], columnZones: [], cells: [] });
  });

  it('adds the pair\'s timeline only when from and to are given', () => {
    const s = new Sources();
    s.fill();
    expect(response(s, '')).not.toHaveProperty('pair');
    const r = response(s, 'window=1m&from=zone-a&to=zone-c');
    const pair = r['pair'] as { from: string; to: string; slotMs: number; slots: { startMs: number; counts: number[] }[] };
    expect(pair.from).toBe('zone-a');
    expect(pair.to).toBe('zone-c');
    expect(pair.slotMs).toBe(SLOT_MS);
    expect(pair.slots).toEqual(s.matrix.timeline('dispatch.producer', 'zone-a', 'zone-c', WINDOWS_MS['1m'], s.now));
    expect(pair.slots).toHaveLength(WINDOWS_MS['1m'] / SLOT_MS);
    expect(pair.slots[pair.slots.length - 1]!.counts.reduce((a, b) => a + b, 0)).toBe(4);
  });

  it('takes the timeline from the series the rows and metric name', () => {
    const s = new Sources();
    s.fill();
    const rtt = response(s, 'metric=rtt&from=zone-d&to=zone-a')['pair'] as { slots: { counts: number[] }[] };
    expect(rtt.slots.flatMap((x) => x.counts).reduce((a, b) => a + b, 0)).toBe(1);
    const dispatcher = response(s, 'rows=dispatcher&from=zone-d&to=zone-b')['pair'] as { slots: { counts: number[] }[] };
    expect(dispatcher.slots.flatMap((x) => x.counts).reduce((a, b) => a + b, 0)).toBe(1);
    const wrongSeries = response(s, 'from=zone-d&to=zone-b')['pair'] as { slots: { counts: number[] }[] };
    expect(wrongSeries.slots.flatMap((x) => x.counts).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('serialises to JSON (what the admin server sends)', () => {
    const s = new Sources();
    s.fill();
    const text = JSON.stringify(heatmapResponse(s, parse('from=zone-a&to=zone-b')));
    const back = JSON.parse(text) as { cells: HeatmapCell[] };
    expect(back.cells).toHaveLength(3);
  });
});
