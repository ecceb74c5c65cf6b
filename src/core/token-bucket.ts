/**
 * A token bucket: `ratePerSec` tokens flow in, at most `burst` are kept. Pure:
 * the caller passes the time, so a fake clock drives it in tests.
 *
 * A request larger than the burst passes when the bucket is full and leaves
 * it in debt (negative), which later requests wait out: nothing is refused
 * forever for its size, and the long-run rate still holds.
 *
 * Invariant: burst - (largest request) <= tokens <= burst, and `updatedMs`
 * never goes back (a clock that jumps back refills nothing and takes nothing
 * away).
 */
export interface TokenBucketLimits {
  /** Tokens added per second. */
  ratePerSec: number;
  /** Most tokens kept, so most taken at once after an idle spell; also the largest request that can ever pass. */
  burst: number;
}

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

export class TokenBucket {
  private tokens: number;
  private updatedMs: number;

  constructor(
    private limits: TokenBucketLimits,
    nowMs: number,
  ) {
    checkLimits(limits);
    this.tokens = limits.burst;
    this.updatedMs = nowMs;
  }

  /** New limits from now on; the tokens kept are capped to the new burst. */
  setLimits(limits: TokenBucketLimits, nowMs: number): void {
    checkLimits(limits);
    this.refill(nowMs);
    this.limits = limits;
    this.tokens = Math.min(this.tokens, limits.burst);
  }

  /**
   * Takes `n` tokens if there are that many (a full bucket for `n` above the
   * burst), else takes none and says how long until there will be.
   */
  take(n: number, nowMs: number): TakeResult {
    this.refill(nowMs);
    const needed = Math.min(n, this.limits.burst);
    if (needed <= this.tokens) {
      this.tokens -= n;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil(((needed - this.tokens) / this.limits.ratePerSec) * 1000)) };
  }

  /** Whether the bucket is full (nothing was taken lately): a caller may then forget it. */
  isFull(nowMs: number): boolean {
    this.refill(nowMs);
    return this.tokens >= this.limits.burst;
  }

  private refill(nowMs: number): void {
    if (nowMs <= this.updatedMs) return;
    this.tokens = Math.min(this.limits.burst, this.tokens + ((nowMs - this.updatedMs) * this.limits.ratePerSec) / 1000);
    this.updatedMs = nowMs;
  }
}

function checkLimits(limits: TokenBucketLimits): void {
  if (!Number.isFinite(limits.ratePerSec) || limits.ratePerSec <= 0) throw new RangeError(`ratePerSec must be a positive number, got ${limits.ratePerSec}`);
  if (!Number.isFinite(limits.burst) || limits.burst < 1) throw new RangeError(`burst must be at least 1, got ${limits.burst}`);
}
