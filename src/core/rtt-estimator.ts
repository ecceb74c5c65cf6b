/**
 * Smoothed round-trip time in the style of RFC 6298: SRTT and RTTVAR, with
 * alpha = 1/8 and beta = 1/4 in steady state.
 *
 * The first sample sets SRTT = R and RTTVAR = R/2 as in the RFC. For the
 * next samples, up to WARMUP_SAMPLES, the estimate is robust instead of
 * exponential: SRTT is the median of the samples so far and RTTVAR their
 * mean absolute deviation from it. A new stream's first heartbeats are the
 * likeliest to be slow (connection warm-up, a JIT pause); with the RFC's
 * gains one such sample would hold the interval up for some fifteen
 * heartbeats, while here it moves the median not at all and RTTVAR by 1/n.
 * From then on the RFC's update continues from that seed. Pure; feed it
 * samples in milliseconds.
 *
 * Invariant: `samples === 0` iff no sample was taken, and then srttMs and
 * rttvarMs are 0.
 */
export const WARMUP_SAMPLES = 8;

export class RttEstimator {
  srttMs = 0;
  rttvarMs = 0;
  samples = 0;
  private warmup: number[] = [];

  sample(rttMs: number): void {
    if (!Number.isFinite(rttMs) || rttMs < 0) return;
    this.samples += 1;
    if (this.samples === 1) {
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
      this.warmup.push(rttMs);
      return;
    }
    if (this.samples <= WARMUP_SAMPLES) {
      this.warmup.push(rttMs);
      const median = medianOf(this.warmup);
      let deviation = 0;
      for (const x of this.warmup) deviation += Math.abs(x - median);
      this.srttMs = median;
      this.rttvarMs = deviation / this.warmup.length;
      if (this.samples === WARMUP_SAMPLES) this.warmup = [];
      return;
    }
    this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - rttMs);
    this.srttMs = 0.875 * this.srttMs + 0.125 * rttMs;
  }
}

function medianOf(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
