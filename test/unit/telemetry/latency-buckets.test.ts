import { describe, expect, it } from 'vitest';
import { bucketIndex, LATENCY_BUCKETS_MS, LATENCY_BUCKETS_SECONDS, quantileMs } from '../../../src/telemetry/latency-buckets';

const INF = LATENCY_BUCKETS_MS.length;

/** Bucket counts (finite buckets, then +Inf) with `n` samples in each listed bucket. */
function counts(entries: Record<number, number>): number[] {
  const out = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  for (const [index, n] of Object.entries(entries)) out[Number(index)] = n;
  return out;
}

describe('LATENCY_BUCKETS', () => {
  it('run from 0.25 ms to 30 s, strictly increasing, and the seconds table mirrors the ms one', () => {
    expect(LATENCY_BUCKETS_MS[0]).toBe(0.25);
    expect(LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]).toBe(30_000);
    for (let i = 1; i < LATENCY_BUCKETS_MS.length; i++) expect(LATENCY_BUCKETS_MS[i]!).toBeGreaterThan(LATENCY_BUCKETS_MS[i - 1]!);
    expect(LATENCY_BUCKETS_SECONDS).toEqual(LATENCY_BUCKETS_MS.map((ms) => ms / 1000));
  });
});

describe('bucketIndex', () => {
  it('puts a value exactly on a bound into that bound\'s bucket', () => {
    LATENCY_BUCKETS_MS.forEach((bound, i) => expect(bucketIndex(bound)).toBe(i));
  });

  it('puts a value just above a bound into the next bucket', () => {
    LATENCY_BUCKETS_MS.forEach((bound, i) => expect(bucketIndex(bound + 1e-9)).toBe(i + 1));
  });

  it('puts 0 and negative values into the first bucket', () => {
    expect(bucketIndex(0)).toBe(0);
    expect(bucketIndex(-5)).toBe(0);
    expect(bucketIndex(0.1)).toBe(0);
  });

  it('puts anything above the last bound into +Inf (index LATENCY_BUCKETS_MS.length)', () => {
    expect(bucketIndex(30_000.001)).toBe(INF);
    expect(bucketIndex(1e9)).toBe(INF);
    expect(bucketIndex(Number.POSITIVE_INFINITY)).toBe(INF);
  });

  it('places values inside buckets by their upper bound', () => {
    expect(bucketIndex(0.3)).toBe(1); // (0.25, 0.5]
    expect(bucketIndex(4)).toBe(5); // (3, 5]
    expect(bucketIndex(99.9)).toBe(12); // (75, 100]
    expect(bucketIndex(12_000)).toBe(21); // (10 000, 30 000]
  });
});

describe('quantileMs', () => {
  it('is undefined without samples (empty array or all zero counts)', () => {
    expect(quantileMs([], 0.99)).toBeUndefined();
    expect(quantileMs(counts({}), 0.5)).toBeUndefined();
  });

  it('interpolates linearly inside the bucket that holds the rank', () => {
    // 10 samples in (0.5, 1]: p50 has rank 5, half way through the bucket.
    expect(quantileMs(counts({ 2: 10 }), 0.5)).toBeCloseTo(0.75, 10);
    // rank 9.9 of 10: 0.5 + 0.5 * 0.99.
    expect(quantileMs(counts({ 2: 10 }), 0.99)).toBeCloseTo(0.995, 10);
    expect(quantileMs(counts({ 2: 10 }), 1)).toBe(1);
  });

  it('counts from 0 in the first bucket', () => {
    // 4 samples in [0, 0.25]: p50 rank 2 -> 0.25 * 2/4.
    expect(quantileMs(counts({ 0: 4 }), 0.5)).toBeCloseTo(0.125, 10);
  });

  it('skips empty buckets and interpolates within the one reached (hand-computed)', () => {
    // 4 in [0, 0.25], 6 in (2, 3]: total 10.
    const c = counts({ 0: 4, 4: 6 });
    // p40: rank 4 is the end of the first bucket.
    expect(quantileMs(c, 0.4)).toBeCloseTo(0.25, 10);
    // p50: rank 5, 1 of 6 into (2, 3] -> 2 + 1/6.
    expect(quantileMs(c, 0.5)).toBeCloseTo(2 + 1 / 6, 10);
    // p95: rank 9.5 -> 2 + 5.5/6.
    expect(quantileMs(c, 0.95)).toBeCloseTo(2 + 5.5 / 6, 10);
    // p99: rank 9.9 -> 2 + 5.9/6.
    expect(quantileMs(c, 0.99)).toBeCloseTo(2 + 5.9 / 6, 10);
  });

  it('matches a spread-out histogram computed by hand', () => {
    // 50 in (5, 7.5], 45 in (75, 100], 5 in (250, 500]: total 100.
    const c = counts({ 6: 50, 12: 45, 15: 5 });
    expect(quantileMs(c, 0.5)).toBeCloseTo(7.5, 10); // rank 50 = end of (5, 7.5]
    expect(quantileMs(c, 0.9)).toBeCloseTo(75 + 25 * (40 / 45), 10);
    expect(quantileMs(c, 0.95)).toBeCloseTo(100, 10); // rank 95 = end of (75, 100]
    expect(quantileMs(c, 0.99)).toBeCloseTo(250 + 250 * (4 / 5), 10);
  });

  it('answers the last finite bound when the rank falls in +Inf', () => {
    expect(quantileMs(counts({ [INF]: 7 }), 0.5)).toBe(30_000);
    expect(quantileMs(counts({ [INF]: 7 }), 0.99)).toBe(30_000);
    const mixed = counts({ 0: 99, [INF]: 1 });
    expect(quantileMs(mixed, 0.99)).toBeCloseTo(0.25, 10); // rank 99 is still in the first bucket
    expect(quantileMs(mixed, 0.995)).toBe(30_000);
    expect(quantileMs(mixed, 1)).toBe(30_000);
  });

  it('accepts a Float64Array', () => {
    const c = new Float64Array(LATENCY_BUCKETS_MS.length + 1);
    c[7] = 2; // (7.5, 10]
    expect(quantileMs(c, 0.5)).toBeCloseTo(8.75, 10);
  });
});
