/**
 * Smoothed round-trip time in the style of RFC 6298: SRTT and RTTVAR, with
 * alpha = 1/8 and beta = 1/4 in steady state. The first sample sets SRTT = R
 * and RTTVAR = R/2 as in the RFC; while there are few samples the gains are
 * 1/n instead (a running mean: alpha = max(1/8, 1/n), beta = max(1/4, 1/n)
 * for the n-th sample), so a new session's estimate settles within a few
 * heartbeats instead of decaying from R/2 at 3/4 per sample.
 * Pure; feed it samples in milliseconds.
 *
 * Invariant: `samples === 0` iff no sample was taken, and then srttMs and
 * rttvarMs are 0.
 */
export class RttEstimator {
  srttMs = 0;
  rttvarMs = 0;
  samples = 0;

  sample(rttMs: number): void {
    if (!Number.isFinite(rttMs) || rttMs < 0) return;
    if (this.samples === 0) {
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
    } else {
      const n = this.samples + 1;
      const alpha = Math.max(1 / 8, 1 / n);
      const beta = Math.max(1 / 4, 1 / n);
      this.rttvarMs = (1 - beta) * this.rttvarMs + beta * Math.abs(this.srttMs - rttMs);
      this.srttMs = (1 - alpha) * this.srttMs + alpha * rttMs;
    }
    this.samples += 1;
  }
}
