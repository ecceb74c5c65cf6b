import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock';
import { TokenBucket } from '../../src/core/token-bucket';

/** The submit-rate bucket, driven by a fake clock: no waiting. */
describe('TokenBucket', () => {
  it('starts full: a burst passes at once, the next request is told how long to wait, and passes after that', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSec: 10, burst: 5 }, clock.nowMs());
    for (let i = 0; i < 5; i++) expect(bucket.take(1, clock.nowMs())).toEqual({ ok: true });
    expect(bucket.take(1, clock.nowMs())).toEqual({ ok: false, retryAfterMs: 100 });
    clock.advance(99);
    const early = bucket.take(1, clock.nowMs());
    expect(early.ok).toBe(false);
    expect(early.ok === false && early.retryAfterMs).toBeGreaterThanOrEqual(1);
    clock.advance(1);
    expect(bucket.take(1, clock.nowMs())).toEqual({ ok: true });
    expect(bucket.take(1, clock.nowMs()).ok).toBe(false);
  });

  it('a refused request takes nothing: the wait it was told is enough', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSec: 4, burst: 4 }, clock.nowMs());
    expect(bucket.take(4, clock.nowMs()).ok).toBe(true);
    const refused = bucket.take(3, clock.nowMs());
    expect(refused).toEqual({ ok: false, retryAfterMs: 750 });
    // Asking again while waiting does not push the wait back.
    clock.advance(500);
    expect(bucket.take(3, clock.nowMs())).toEqual({ ok: false, retryAfterMs: 250 });
    clock.advance(250);
    expect(bucket.take(3, clock.nowMs())).toEqual({ ok: true });
  });

  it('refills at the rate and never above the burst after an idle spell', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSec: 2, burst: 3 }, clock.nowMs());
    expect(bucket.take(3, clock.nowMs()).ok).toBe(true);
    expect(bucket.isFull(clock.nowMs())).toBe(false);
    clock.advance(60_000);
    expect(bucket.isFull(clock.nowMs())).toBe(true);
    expect(bucket.take(3, clock.nowMs()).ok).toBe(true);
    expect(bucket.take(1, clock.nowMs())).toEqual({ ok: false, retryAfterMs: 500 });
  });

  it('a request above the burst passes only when the bucket is full, and leaves it in debt that later requests wait out', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSec: 10, burst: 5 }, clock.nowMs());
    expect(bucket.take(1, clock.nowMs()).ok).toBe(true);
    // Not full: a request of 8 needs the whole burst (5), there are 4.
    expect(bucket.take(8, clock.nowMs())).toEqual({ ok: false, retryAfterMs: 100 });
    clock.advance(100);
    expect(bucket.take(8, clock.nowMs())).toEqual({ ok: true });
    // 5 - 8 = -3: one more token is 4 tokens away at 10/s.
    expect(bucket.take(1, clock.nowMs())).toEqual({ ok: false, retryAfterMs: 400 });
    clock.advance(400);
    expect(bucket.take(1, clock.nowMs())).toEqual({ ok: true });
    // The long-run rate holds: 8 + 1 tasks took 100 + 400 ms after the first burst was spent.
    expect(bucket.take(1, clock.nowMs()).ok).toBe(false);
  });

  it('a clock that goes back refills nothing, and the time it went back is not counted when it comes forward again', () => {
    const clock = new ManualClock(1_000_000);
    const bucket = new TokenBucket({ ratePerSec: 1, burst: 1 }, clock.nowMs());
    expect(bucket.take(1, clock.nowMs()).ok).toBe(true);
    clock.set(1_000_000 - 3_600_000);
    expect(bucket.take(1, clock.nowMs()).ok).toBe(false);
    clock.set(1_000_000 + 999);
    expect(bucket.take(1, clock.nowMs()).ok).toBe(false);
    clock.set(1_000_000 + 1_000);
    expect(bucket.take(1, clock.nowMs())).toEqual({ ok: true });
    // Going back does not take anything away either: a full bucket stays full.
    clock.advance(10_000);
    clock.advance(-5_000);
    expect(bucket.isFull(clock.nowMs())).toBe(true);
  });

  it('new limits apply from now on and cap the tokens kept to the new burst', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSec: 100, burst: 100 }, clock.nowMs());
    bucket.setLimits({ ratePerSec: 1, burst: 2 }, clock.nowMs());
    expect(bucket.take(2, clock.nowMs()).ok).toBe(true);
    expect(bucket.take(1, clock.nowMs())).toEqual({ ok: false, retryAfterMs: 1_000 });
    bucket.setLimits({ ratePerSec: 10, burst: 2 }, clock.nowMs());
    expect(bucket.take(1, clock.nowMs())).toEqual({ ok: false, retryAfterMs: 100 });
  });

  it('says how long to wait in whole milliseconds, at least 1', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket({ ratePerSec: 3, burst: 1 }, clock.nowMs());
    expect(bucket.take(1, clock.nowMs()).ok).toBe(true);
    const refused = bucket.take(1, clock.nowMs());
    expect(refused).toEqual({ ok: false, retryAfterMs: 334 });
    clock.advance(333);
    const almost = bucket.take(1, clock.nowMs());
    expect(almost).toEqual({ ok: false, retryAfterMs: 1 });
    clock.advance(1);
    expect(bucket.take(1, clock.nowMs()).ok).toBe(true);
  });

  it('refuses limits that would never let anything through', () => {
    for (const limits of [
      { ratePerSec: 0, burst: 1 },
      { ratePerSec: -1, burst: 1 },
      { ratePerSec: Number.NaN, burst: 1 },
      { ratePerSec: Infinity, burst: 1 },
      { ratePerSec: 1, burst: 0 },
      { ratePerSec: 1, burst: 0.5 },
    ]) {
      expect(() => new TokenBucket(limits, 0), JSON.stringify(limits)).toThrow(RangeError);
    }
    const bucket = new TokenBucket({ ratePerSec: 1, burst: 1 }, 0);
    expect(() => bucket.setLimits({ ratePerSec: 0, burst: 1 }, 0)).toThrow(/ratePerSec must be a positive number/);
  });
});
