/**
 * The demos' producers submit at a steady rate: each tick starts what the
 * elapsed time says is due. Starts beyond `maxInFlight` are counted as
 * skipped, not queued, so a slow dispatcher shows as skips instead of a
 * growing backlog in the producer.
 */
export interface SteadyRateSpec {
  ratePerSec: number;
  tickMs: number;
  maxInFlight: number;
  /** Shared with the caller's stats: `submitted` and `skipped` advance here. */
  counts: { submitted: number; skipped: number };
  /** Starts submit number `n`; it settles its own failures (a rejection would go unhandled). */
  start: (n: number) => Promise<void>;
}

export interface SteadyRate {
  /** Submits started and not yet settled. */
  inFlight(): number;
  stop(): void;
}

export function startSteadyRate(spec: SteadyRateSpec): SteadyRate {
  const startedMs = Date.now();
  let inFlight = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - startedMs) * spec.ratePerSec) / 1000) - spec.counts.submitted - spec.counts.skipped;
    for (let i = 0; i < due; i++) {
      if (inFlight >= spec.maxInFlight) {
        spec.counts.skipped += 1;
        continue;
      }
      const n = spec.counts.submitted++;
      inFlight += 1;
      void spec.start(n).finally(() => (inFlight -= 1));
    }
  }, spec.tickMs);
  return { inFlight: () => inFlight, stop: () => clearInterval(timer) };
}
