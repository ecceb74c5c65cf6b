/**
 * The latency buckets every histogram of Zonal uses (Prometheus, the
 * heatmap, the SLO check, the latency rows PostgreSQL shares), from 0.25 ms
 * to 30 s: upper bounds in milliseconds, with an implicit +Inf after the
 * last. Changing them changes the meaning of stored heatmap rows: append a
 * new series instead.
 */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 25, 50, 75, 100, 150, 250, 500, 750, 1_000, 2_500, 5_000, 10_000, 30_000,
];

/** The same bounds in seconds, for prom-client. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = LATENCY_BUCKETS_MS.map((ms) => ms / 1000);

/** Index of the bucket `ms` falls in (the last index, LATENCY_BUCKETS_MS.length, is +Inf). */
export function bucketIndex(ms: number): number {
  let lo = 0;
  let hi = LATENCY_BUCKETS_MS.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ms <= LATENCY_BUCKETS_MS[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * The q-quantile (0 < q <= 1) of bucket counts, interpolated linearly inside
 * its bucket as Prometheus' histogram_quantile does; the +Inf bucket answers
 * the highest finite bound. undefined when there are no samples.
 */
export function quantileMs(counts: ArrayLike<number>, q: number): number | undefined {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i]!;
    if (seen + n >= rank && n > 0) {
      if (i >= LATENCY_BUCKETS_MS.length) return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1];
      const lower = i === 0 ? 0 : LATENCY_BUCKETS_MS[i - 1]!;
      const upper = LATENCY_BUCKETS_MS[i]!;
      return lower + (upper - lower) * ((rank - seen) / n);
    }
    seen += n;
  }
  return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1];
}
