import { describe, expect, it } from 'vitest';
import { bucketIndex, LATENCY_BUCKETS_MS, quantileMs } from '../../../src/telemetry/latency-buckets';
import { LatencyMatrix, SLOT_MS, slotStart, WINDOWS_MS, type SlotRow } from '../../../src/telemetry/latency-matrix';

/** A slot boundary: SLOT_MS divides it. */
const T = 1_700_000_000_000;
const BUCKETS = LATENCY_BUCKETS_MS.length + 1;
const HOUR = WINDOWS_MS['1h'];
/** How long slots and silent dispatchers are kept (the longest window and one slot). */
const KEEP_MS = HOUR + SLOT_MS;

function row(overrides: Partial<SlotRow> & { at?: Record<number, number> } = {}): SlotRow {
  const { at = {}, ...rest } = overrides;
  const buckets = new Array<number>(BUCKETS).fill(0);
  for (const [i, n] of Object.entries(at)) buckets[Number(i)] = n;
  return { series: 'dispatch.producer', fromZone: 'a', toZone: 'b', slotMs: T, buckets, sumMs: 0, ...rest };
}

function countOf(m: LatencyMatrix, windowMs: number, nowMs: number, from = 'a', to = 'b'): number {
  return m.summary('dispatch.producer', windowMs, 0.99, nowMs).find((p) => p.from === from && p.to === to)?.count ?? 0;
}

describe('slotStart', () => {
  it('rounds down to the SLOT_MS boundary', () => {
    expect(SLOT_MS).toBe(10_000);
    expect(slotStart(T)).toBe(T);
    expect(slotStart(T + 9_999)).toBe(T);
    expect(slotStart(T + 10_000)).toBe(T + 10_000);
    expect(slotStart(T - 1)).toBe(T - 10_000);
  });
});

describe('record and summary', () => {
  it('summarises each pair of a series with count, p50/p95/p99, mean and the asked quantile', () => {
    const m = new LatencyMatrix();
    // 100 samples a->b: 90 of 1 ms, 10 of 100 ms, spread over two slots.
    for (let i = 0; i < 90; i++) m.record('dispatch.producer', 'a', 'b', 1, T + (i % 2) * SLOT_MS);
    for (let i = 0; i < 10; i++) m.record('dispatch.producer', 'a', 'b', 100, T + SLOT_MS + 5);
    m.record('dispatch.producer', 'a', 'c', 4, T);
    const [ab, ac, ...rest] = m.summary('dispatch.producer', WINDOWS_MS['5m'], 0.95, T + 20_000);
    expect(rest).toEqual([]);
    const expected = new Array<number>(BUCKETS).fill(0);
    expected[bucketIndex(1)] = 90;
    expected[bucketIndex(100)] = 10;
    expect(ab).toEqual({
      from: 'a',
      to: 'b',
      count: 100,
      valueMs: quantileMs(expected, 0.95),
      p50Ms: quantileMs(expected, 0.5),
      p95Ms: quantileMs(expected, 0.95),
      p99Ms: quantileMs(expected, 0.99),
      meanMs: (90 * 1 + 10 * 100) / 100,
    });
    // Hand-computed: p50 rank 50 of 90 in (0.5, 1]; p95 rank 95 = 5 of 10 into (75, 100].
    expect(ab!.p50Ms).toBeCloseTo(0.5 + 0.5 * (50 / 90), 10);
    expect(ab!.p95Ms).toBeCloseTo(87.5, 10);
    expect(ab!.p99Ms).toBeCloseTo(75 + 25 * (9 / 10), 10);
    expect(ac).toMatchObject({ from: 'a', to: 'c', count: 1, meanMs: 4, p50Ms: 4 });
  });

  it('keeps series apart', () => {
    const m = new LatencyMatrix();
    m.record('dispatch.producer', 'a', 'b', 1, T);
    m.record('dispatch.dispatcher', 'd', 'b', 2, T);
    m.record('rtt', 'd', 'b', 3, T);
    m.record('rtt', 'd', 'b', 3, T);
    expect(m.summary('dispatch.producer', WINDOWS_MS['1m'], 0.5, T).map((p) => [p.from, p.to, p.count])).toEqual([['a', 'b', 1]]);
    expect(m.summary('dispatch.dispatcher', WINDOWS_MS['1m'], 0.5, T).map((p) => [p.from, p.to, p.count])).toEqual([['d', 'b', 1]]);
    expect(m.summary('rtt', WINDOWS_MS['1m'], 0.5, T).map((p) => [p.from, p.to, p.count, p.meanMs])).toEqual([['d', 'b', 2, 3]]);
  });

  it('sorts pairs by from zone, then to zone', () => {
    const m = new LatencyMatrix();
    for (const [from, to] of [['b', 'a'], ['a', 'c'], ['a', 'b'], ['', 'z']] as const) m.record('dispatch.producer', from, to, 1, T);
    expect(m.summary('dispatch.producer', WINDOWS_MS['1m'], 0.5, T).map((p) => `${p.from}->${p.to}`)).toEqual(['->z', 'a->b', 'a->c', 'b->a']);
  });

  it('is empty without samples', () => {
    expect(new LatencyMatrix().summary('dispatch.producer', WINDOWS_MS['1h'], 0.99, T)).toEqual([]);
  });
});

describe('windows (slot granularity)', () => {
  it('covers the slot now is in and the ones before it, window / 10 s slots in all', () => {
    const m = new LatencyMatrix();
    m.record('dispatch.producer', 'a', 'b', 1, T - 1); // slot T - 10 s
    m.record('dispatch.producer', 'a', 'b', 1, T); // slot T
    m.record('dispatch.producer', 'a', 'b', 1, T + 9_999); // slot T
    // In the sixth slot after T's predecessor, 1m covers T .. now: the older slot is out.
    expect(countOf(m, WINDOWS_MS['1m'], T + 59_999)).toBe(2);
    expect(countOf(m, WINDOWS_MS['1m'], T + 50_000)).toBe(2);
    // One slot earlier, the older slot was still covered.
    expect(countOf(m, WINDOWS_MS['1m'], T + 49_999)).toBe(3);
    // Once now reaches the slot a minute after T, slot T is out.
    expect(countOf(m, WINDOWS_MS['1m'], T + 60_000)).toBe(0);
    // The matrix and the pair's timeline count the same slots.
    const inTimeline = m.timeline('dispatch.producer', 'a', 'b', WINDOWS_MS['1m'], T + 59_999).reduce((n, s) => n + s.counts.reduce((x, y) => x + y, 0), 0);
    expect(inTimeline).toBe(2);
  });

  it('applies the same rule to 5m and 1h', () => {
    const m = new LatencyMatrix();
    m.record('dispatch.producer', 'a', 'b', 1, T);
    expect(countOf(m, WINDOWS_MS['5m'], T + 299_999)).toBe(1);
    expect(countOf(m, WINDOWS_MS['5m'], T + 300_000)).toBe(0);
    expect(countOf(m, WINDOWS_MS['1h'], T + HOUR - 1)).toBe(1);
    expect(countOf(m, WINDOWS_MS['1h'], T + HOUR)).toBe(0);
    // One sample counts in every window that covers it.
    expect([countOf(m, WINDOWS_MS['1m'], T + 120_000), countOf(m, WINDOWS_MS['5m'], T + 120_000), countOf(m, WINDOWS_MS['1h'], T + 120_000)]).toEqual([0, 1, 1]);
  });
});

describe('timeline', () => {
  it('returns every slot of the window, oldest first, ending with the current one, with the pair\'s counts', () => {
    const m = new LatencyMatrix();
    const now = T + 65_000;
    m.record('dispatch.producer', 'a', 'b', 1, T + 10_000); // first slot of the timeline
    m.record('dispatch.producer', 'a', 'b', 1, T + 10_001);
    m.record('dispatch.producer', 'a', 'b', 200, now); // current slot
    m.record('dispatch.producer', 'a', 'c', 1, T + 30_000); // another pair
    m.record('rtt', 'a', 'b', 1, T + 30_000); // another series
    const slots = m.timeline('dispatch.producer', 'a', 'b', WINDOWS_MS['1m'], now);
    expect(slots.map((s) => s.startMs)).toEqual([1, 2, 3, 4, 5, 6].map((i) => T + i * SLOT_MS));
    for (const s of slots) expect(s.counts).toHaveLength(BUCKETS);
    const first = new Array<number>(BUCKETS).fill(0);
    first[bucketIndex(1)] = 2;
    const last = new Array<number>(BUCKETS).fill(0);
    last[bucketIndex(200)] = 1;
    const empty = new Array<number>(BUCKETS).fill(0);
    expect(slots.map((s) => s.counts)).toEqual([first, empty, empty, empty, empty, last]);
  });

  it('has window / SLOT_MS slots whether or not now is on a slot boundary, and leaves out older ones', () => {
    const m = new LatencyMatrix();
    m.record('dispatch.producer', 'a', 'b', 1, T);
    const aligned = m.timeline('dispatch.producer', 'a', 'b', WINDOWS_MS['1m'], T + 60_000);
    expect(aligned.map((s) => s.startMs)).toEqual([1, 2, 3, 4, 5, 6].map((i) => T + i * SLOT_MS));
    expect(aligned.flatMap((s) => s.counts).reduce((a, b) => a + b, 0)).toBe(0);
    expect(m.timeline('dispatch.producer', 'a', 'b', WINDOWS_MS['5m'], T + 1)).toHaveLength(30);
    expect(m.timeline('dispatch.producer', 'a', 'b', WINDOWS_MS['1h'], T + 1)).toHaveLength(360);
    const five = m.timeline('dispatch.producer', 'a', 'b', WINDOWS_MS['5m'], T + 1);
    expect(five[five.length - 1]!.startMs).toBe(T);
    expect(five[five.length - 1]!.counts[bucketIndex(1)]).toBe(1);
  });

  it('adds remote rows of the pair into their slots', () => {
    const m = new LatencyMatrix();
    m.record('dispatch.producer', 'a', 'b', 1, T);
    m.mergeRemote('d2', [row({ slotMs: T, at: { [bucketIndex(1)]: 3 } })], T);
    const slots = m.timeline('dispatch.producer', 'a', 'b', WINDOWS_MS['1m'], T);
    expect(slots[slots.length - 1]!.counts[bucketIndex(1)]).toBe(4);
  });

  it('is all empty slots for a pair without samples', () => {
    const slots = new LatencyMatrix().timeline('rtt', 'x', 'y', WINDOWS_MS['1m'], T);
    expect(slots).toHaveLength(6);
    expect(slots.every((s) => s.counts.every((n) => n === 0))).toBe(true);
  });
});

describe('localRows', () => {
  it('lists this dispatcher\'s slots starting at or after sinceMs, whole', () => {
    const m = new LatencyMatrix();
    m.record('dispatch.producer', 'a', 'b', 1, T);
    m.record('dispatch.producer', 'a', 'b', 3, T + 5);
    m.record('rtt', 'd', 'b', 2, T + SLOT_MS);
    const all = m.localRows(T);
    expect(all).toHaveLength(2);
    const first = all.find((r) => r.series === 'dispatch.producer')!;
    expect(first).toMatchObject({ series: 'dispatch.producer', fromZone: 'a', toZone: 'b', slotMs: T, sumMs: 4 });
    expect(first.buckets).toHaveLength(BUCKETS);
    expect(first.buckets[bucketIndex(1)]).toBe(1);
    expect(first.buckets[bucketIndex(3)]).toBe(1);
    expect(first.buckets.reduce((a, b) => a + b, 0)).toBe(2);
    expect(m.localRows(T + 1)).toEqual([{ series: 'rtt', fromZone: 'd', toZone: 'b', slotMs: T + SLOT_MS, buckets: expect.any(Array), sumMs: 2 }]);
    expect(m.localRows(T + SLOT_MS + 1)).toEqual([]);
  });

  it('does not list rows merged from other dispatchers', () => {
    const m = new LatencyMatrix();
    m.mergeRemote('d2', [row({ at: { 0: 1 } })], T);
    expect(m.localRows(0)).toEqual([]);
  });

  it('round-trips: another matrix merging them summarises the same', () => {
    const a = new LatencyMatrix();
    for (let i = 0; i < 50; i++) a.record('dispatch.producer', 'a', 'b', i, T + i * 100);
    const b = new LatencyMatrix();
    b.mergeRemote('d1', a.localRows(0), T + 5_000);
    expect(b.summary('dispatch.producer', WINDOWS_MS['5m'], 0.99, T + 5_000)).toEqual(a.summary('dispatch.producer', WINDOWS_MS['5m'], 0.99, T + 5_000));
  });
});

describe('mergeRemote', () => {
  it('adds another dispatcher\'s rows to the summary (counts and sums)', () => {
    const m = new LatencyMatrix();
    m.record('dispatch.producer', 'a', 'b', 1, T);
    m.mergeRemote('d2', [row({ at: { [bucketIndex(10)]: 3 }, sumMs: 30 })], T);
    m.mergeRemote('d3', [row({ slotMs: T - SLOT_MS, at: { [bucketIndex(10)]: 1 }, sumMs: 10 })], T);
    const [ab] = m.summary('dispatch.producer', WINDOWS_MS['1m'], 0.5, T);
    expect(ab).toMatchObject({ count: 5, meanMs: 41 / 5 });
    expect(m.remoteDispatchers().sort()).toEqual(['d2', 'd3']);
  });

  it('a newer copy of the same (series, from, to, slot) replaces the older one, not added twice', () => {
    const m = new LatencyMatrix();
    m.mergeRemote('d2', [row({ at: { 0: 2 }, sumMs: 0.2 })], T);
    m.mergeRemote('d2', [row({ at: { 0: 5 }, sumMs: 0.5 })], T + 1_000);
    expect(countOf(m, WINDOWS_MS['1m'], T + 1_000)).toBe(5);
    // Another slot, series or pair of the same dispatcher is kept beside it.
    m.mergeRemote('d2', [row({ slotMs: T + SLOT_MS, at: { 0: 1 } }), row({ series: 'rtt', at: { 0: 7 } }), row({ toZone: 'c', at: { 0: 4 } })], T + SLOT_MS);
    expect(countOf(m, WINDOWS_MS['1m'], T + SLOT_MS)).toBe(6);
    expect(countOf(m, WINDOWS_MS['1m'], T + SLOT_MS, 'a', 'c')).toBe(4);
    expect(m.summary('rtt', WINDOWS_MS['1m'], 0.5, T + SLOT_MS)[0]!.count).toBe(7);
  });

  it('keeps the same slot of two dispatchers apart (both counted)', () => {
    const m = new LatencyMatrix();
    m.mergeRemote('d2', [row({ at: { 0: 2 } })], T);
    m.mergeRemote('d3', [row({ at: { 0: 3 } })], T);
    m.mergeRemote('d2', [row({ at: { 0: 2 } })], T);
    expect(countOf(m, WINDOWS_MS['1m'], T)).toBe(5);
  });

  it('ignores rows with a wrong bucket count or an unknown series, and keeps the good ones', () => {
    const m = new LatencyMatrix();
    const short = { ...row(), buckets: new Array<number>(BUCKETS - 1).fill(1) };
    const long = { ...row(), buckets: new Array<number>(BUCKETS + 1).fill(1) };
    const unknown = { ...row({ at: { 0: 9 } }), series: 'queue.wait' } as unknown as SlotRow;
    m.mergeRemote('d2', [short, long, unknown, row({ toZone: 'c', at: { 0: 1 } })], T);
    expect(m.summary('dispatch.producer', WINDOWS_MS['1m'], 0.5, T).map((p) => [p.to, p.count])).toEqual([['c', 1]]);
    expect(m.remoteDispatchers()).toEqual(['d2']);
  });

  it('a dispatcher that sent only bad rows is known but adds nothing', () => {
    const m = new LatencyMatrix();
    m.mergeRemote('d2', [{ ...row(), buckets: [1] }], T);
    expect(m.remoteDispatchers()).toEqual(['d2']);
    expect(m.summary('dispatch.producer', WINDOWS_MS['1h'], 0.5, T)).toEqual([]);
  });
});

describe('prune', () => {
  it('drops local slots older than the longest window and one slot', () => {
    const m = new LatencyMatrix();
    m.record('dispatch.producer', 'a', 'b', 1, T);
    m.record('dispatch.producer', 'a', 'b', 1, T + SLOT_MS);
    m.prune(T + KEEP_MS);
    expect(m.localRows(0).map((r) => r.slotMs)).toEqual([T, T + SLOT_MS]);
    m.prune(T + KEEP_MS + 1);
    expect(m.localRows(0).map((r) => r.slotMs)).toEqual([T + SLOT_MS]);
    m.prune(T + SLOT_MS + KEEP_MS + 1);
    expect(m.localRows(0)).toEqual([]);
  });

  it('drops a dispatcher not heard from in the longest window and one slot, and keeps one heard from since', () => {
    const m = new LatencyMatrix();
    m.mergeRemote('quiet', [row({ at: { 0: 1 } })], T);
    m.mergeRemote('chatty', [row({ at: { 0: 1 } })], T);
    m.mergeRemote('chatty', [], T + HOUR);
    m.prune(T + KEEP_MS);
    expect(m.remoteDispatchers().sort()).toEqual(['chatty', 'quiet']);
    m.prune(T + KEEP_MS + 1);
    expect(m.remoteDispatchers()).toEqual(['chatty']);
  });

  it('drops old rows of a dispatcher still heard from', () => {
    const m = new LatencyMatrix();
    m.mergeRemote('d2', [row({ slotMs: T, at: { 0: 1 } }), row({ slotMs: T + HOUR, at: { 0: 2 } })], T + HOUR);
    m.prune(T + KEEP_MS + 1);
    expect(m.remoteDispatchers()).toEqual(['d2']);
    expect(m.summary('dispatch.producer', 10 * HOUR, 0.5, T + KEEP_MS + 1)[0]!.count).toBe(2);
  });

  it('recording into a new slot drops that pair\'s slots past the keep time', () => {
    const m = new LatencyMatrix();
    m.record('dispatch.producer', 'a', 'b', 1, T);
    m.record('dispatch.producer', 'a', 'b', 1, T + KEEP_MS + 1);
    expect(m.localRows(0).map((r) => r.slotMs)).toEqual([slotStart(T + KEEP_MS + 1)]);
  });
});
