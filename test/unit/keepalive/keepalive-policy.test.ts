import { describe, expect, it } from 'vitest';
import {
  decideKeepalive,
  KEEPALIVE_DEFAULTS,
  keepaliveCapMs,
  LB_SLACK_MS,
  LB_WINDOW_SHARE,
  shouldReannounce,
  validateKeepalivePolicy,
  type KeepaliveDecision,
  type KeepalivePolicyOptions,
} from '../../../src/core/keepalive-policy';
import { RttEstimator } from '../../../src/core/rtt-estimator';

/**
 * A policy where RTT alone sets the interval: a small minimum, caps far away
 * (lbIdleWindowMs 350 000 -> 280 000; deadPeerDetectMs 900 000 -> 300 000;
 * maxIntervalMs 60 000) and a budget no single session can reach.
 */
const RTT_ONLY: KeepalivePolicyOptions = {
  minIntervalMs: 10,
  maxIntervalMs: 60_000,
  lbIdleWindowMs: 350_000,
  deadPeerDetectMs: 900_000,
  heartbeatBudgetPerSec: 1_000_000,
  baseIdleMs: 100,
};

/** Feeds `series` one sample at a time and returns the decision after each sample. */
function run(series: readonly number[], o: KeepalivePolicyOptions = RTT_ONLY, e = new RttEstimator(), sessions = 1): KeepaliveDecision[] {
  return series.map((rttMs) => {
    e.sample(rttMs);
    return decideKeepalive(o, e, sessions);
  });
}

const intervals = (ds: readonly KeepaliveDecision[]): number[] => ds.map((d) => d.intervalMs);
const repeat = (rttMs: number, n: number): number[] => Array.from({ length: n }, () => rttMs);
/** 20 ms +- 15 ms: 35, 5, 35, 5, ... */
const jittery = (n: number): number[] => Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 35 : 5));
const last = <T>(xs: readonly T[]): T => {
  const x = xs[xs.length - 1];
  if (x === undefined) throw new Error('empty');
  return x;
};

describe('decideKeepalive with synthetic RTT series', () => {
  it('with no sample yet, uses minIntervalMs', () => {
    expect(decideKeepalive(RTT_ONLY, new RttEstimator(), 1)).toEqual({ intervalMs: 10, idleTimeoutMs: 100, limitedBy: 'rtt', overBudget: false });
    expect(decideKeepalive(KEEPALIVE_DEFAULTS, new RttEstimator(), 1)).toEqual({ intervalMs: 500, idleTimeoutMs: 5_000, limitedBy: 'rtt', overBudget: false });
  });

  it('steady 20 ms: the interval is round(2*SRTT + 4*RTTVAR) after every sample and settles near 40 ms within 10 samples', () => {
    const e = new RttEstimator();
    const ds = run(repeat(20, 20), RTT_ONLY, e);
    // The first sample: SRTT 20, RTTVAR 10 (R/2). From the second on, the median is 20 and the deviation 0.
    expect(intervals(ds)).toEqual([80, ...repeat(40, 19)]);
    expect(ds[9]).toEqual({ intervalMs: 40, idleTimeoutMs: 120, limitedBy: 'rtt', overBudget: false });
    expect(last(ds)).toEqual({ intervalMs: 40, idleTimeoutMs: 120, limitedBy: 'rtt', overBudget: false });
    expect(Math.round(2 * e.srttMs + 4 * e.rttvarMs)).toBe(40);
  });

  it('jittery 20 +- 15 ms: a longer interval and idle timeout than steady, from the RTTVAR margin', () => {
    const e = new RttEstimator();
    const ds = run(jittery(50), RTT_ONLY, e);
    // Warm-up (median and mean deviation of the samples so far), then the RFC's gains from the 9th sample.
    expect(intervals(ds).slice(0, 10)).toEqual([140, 100, 110, 100, 118, 100, 121, 100, 104, 101]);
    // It settles into an oscillation between 102 and 106 ms.
    expect(intervals(ds).slice(-6)).toEqual([106, 102, 106, 102, 106, 102]);
    const steady = last(run(repeat(20, 50)));
    const jitter = last(ds);
    expect(steady).toEqual({ intervalMs: 40, idleTimeoutMs: 120, limitedBy: 'rtt', overBudget: false });
    expect(jitter).toEqual({ intervalMs: 102, idleTimeoutMs: 306, limitedBy: 'rtt', overBudget: false });
    // Both have a mean of about 20 ms; the difference is the variance term.
    expect(Math.abs(e.srttMs - 20)).toBeLessThan(1.5);
    expect(e.rttvarMs).toBeGreaterThan(15);
    for (const d of ds.slice(10)) {
      expect(d.intervalMs).toBeGreaterThan(2.5 * steady.intervalMs);
      expect(d.idleTimeoutMs).toBeGreaterThan(2.5 * steady.idleTimeoutMs);
    }
  });

  it('a single 500 ms spike raises the interval at once, then it decays back', () => {
    const e = new RttEstimator();
    const before = last(run(repeat(20, 20), RTT_ONLY, e));
    expect(before.intervalMs).toBe(40);
    const spike = last(run([500], RTT_ONLY, e));
    // RTTVAR = 3/4 * 0.0423 + 1/4 * 480 = 120.03; SRTT = 17.5 + 62.5 = 80 -> 160 + 480.13
    expect(e.srttMs).toBe(80);
    expect(spike).toEqual({ intervalMs: 640, idleTimeoutMs: 1_920, limitedBy: 'rtt', overBudget: false });
    const after = intervals(run(repeat(20, 40), RTT_ONLY, e));
    expect(after.slice(0, 8)).toEqual([565, 499, 442, 392, 348, 309, 276, 246]);
    for (let i = 1; i < after.length; i++) expect(after[i]!).toBeLessThanOrEqual(after[i - 1]!);
    expect(after[19]).toBe(82); // 20 samples after the spike
    expect(last(after)).toBe(43);
  });

  it('loss: with no samples for a while the interval does not move, and idle stays max(3 * interval, baseIdleMs)', () => {
    for (const [baseIdleMs, idleTimeoutMs] of [
      [100, 120],
      [5_000, 5_000],
    ] as const) {
      const o = { ...RTT_ONLY, baseIdleMs };
      const e = new RttEstimator();
      const settled = last(run(repeat(20, 20), o, e));
      expect(settled).toEqual({ intervalMs: 40, idleTimeoutMs, limitedBy: 'rtt', overBudget: false });
      // 100 heartbeat ticks with every Pong lost: the decision is recomputed from the same estimate.
      for (let tick = 0; tick < 100; tick++) expect(decideKeepalive(o, e, 1)).toEqual(settled);
      // A broken measurement is not a sample either.
      e.sample(Number.NaN);
      e.sample(-3);
      expect(e.samples).toBe(20);
      expect(decideKeepalive(o, e, 1)).toEqual(settled);
    }
  });

  it('loss before the first sample: the interval stays at minIntervalMs and idle at baseIdleMs', () => {
    const o = { ...RTT_ONLY, minIntervalMs: 1_000, baseIdleMs: 5_000 };
    const e = new RttEstimator();
    for (let tick = 0; tick < 10; tick++) {
      expect(decideKeepalive(o, e, 1)).toEqual({ intervalMs: 1_000, idleTimeoutMs: 5_000, limitedBy: 'rtt', overBudget: false });
    }
  });

  it('a slow first sample (a warm-up hiccup) barely moves the interval: it settles within 10 samples', () => {
    // 40 ms, then 20 +- 5 ms: the RFC's gains alone would keep the interval
    // about 20 % high at sample 10; the median warm-up ignores the outlier.
    let seed = 7;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const series = [40, ...Array.from({ length: 29 }, () => 20 + (random() - 0.5) * 10)];
    const xs = intervals(run(series));
    const settled = [...xs.slice(10)].sort((a, b) => a - b)[10]!;
    expect(xs[0]).toBe(160);
    expect(Math.abs(xs[9]! - settled)).toBeLessThanOrEqual(settled * 0.1);
  });

  it('slow drift 20 -> 80 ms over 200 samples: the interval follows the RTT up', () => {
    const series = Array.from({ length: 200 }, (_, i) => 20 + (60 * i) / 199);
    const e = new RttEstimator();
    const xs = intervals(run(series, RTT_ONLY, e));
    expect([xs[0], xs[7], xs[49], xs[99], xs[149], xs[199]]).toEqual([80, 45, 75, 105, 135, 165]);
    // Once the first sample's RTTVAR (R/2) is replaced by the measured deviation (sample 2), it never goes down again.
    expect(Math.min(...xs)).toBe(41);
    expect(xs.indexOf(41)).toBe(1);
    for (let i = 2; i < xs.length; i++) expect(xs[i]!).toBeGreaterThanOrEqual(xs[i - 1]!);
    // SRTT lags the ramp by about 7 steps of 60/199 ms; RTTVAR tracks the gap each new sample sees (lag + 1 step).
    expect(e.srttMs).toBeCloseTo(77.889, 3);
    expect(e.rttvarMs).toBeCloseTo(2.412, 3);
  });

  it('a crowd of 10 000 sessions at 2 000 heartbeats/s stretches the interval to 5 000 ms (budget)', () => {
    const e = new RttEstimator();
    for (const r of repeat(20, 20)) e.sample(r);
    const d = decideKeepalive(KEEPALIVE_DEFAULTS, e, 10_000);
    expect(d).toEqual({ intervalMs: 5_000, idleTimeoutMs: 15_000, limitedBy: 'budget', overBudget: false });
    expect((10_000 * 1_000) / d.intervalMs).toBe(KEEPALIVE_DEFAULTS.heartbeatBudgetPerSec);
    // Fewer sessions: RTT (clamped to minIntervalMs 500) wins again.
    expect(decideKeepalive(KEEPALIVE_DEFAULTS, e, 1_000)).toEqual({ intervalMs: 500, idleTimeoutMs: 5_000, limitedBy: 'rtt', overBudget: false });
    expect(decideKeepalive(KEEPALIVE_DEFAULTS, e, 1_001)).toEqual({ intervalMs: 501, idleTimeoutMs: 5_000, limitedBy: 'budget', overBudget: false });
  });

  it('when the budget needs more than the caps allow, the caps win and overBudget says so', () => {
    const e = new RttEstimator();
    for (const r of repeat(20, 20)) e.sample(r);
    // 100 000 sessions at 2 000/s would need 50 000 ms.
    const wide = { ...KEEPALIVE_DEFAULTS, maxIntervalMs: 3_600_000, deadPeerDetectMs: 3_600_000 };
    const lb = { ...wide, lbIdleWindowMs: 30_000 }; // cap 30 000 * 0.8 - 250 = 23 750
    expect(decideKeepalive(lb, e, 100_000)).toEqual({ intervalMs: 23_750, idleTimeoutMs: 71_250, limitedBy: 'lb-window', overBudget: true });
    const dead = { ...wide, lbIdleWindowMs: 350_000, deadPeerDetectMs: 30_000 };
    expect(decideKeepalive(dead, e, 100_000)).toEqual({ intervalMs: 10_000, idleTimeoutMs: 30_000, limitedBy: 'dead-peer', overBudget: true });
    const max = { ...wide, maxIntervalMs: 20_000 };
    expect(decideKeepalive(max, e, 100_000)).toEqual({ intervalMs: 20_000, idleTimeoutMs: 60_000, limitedBy: 'max', overBudget: true });
    // Exactly at the cap the budget is still met (47 500 sessions / 23.75 s = 2 000/s).
    expect(decideKeepalive(lb, e, 47_500)).toEqual({ intervalMs: 23_750, idleTimeoutMs: 71_250, limitedBy: 'lb-window', overBudget: false });
    expect(decideKeepalive(lb, e, 47_501).overBudget).toBe(true);
  });

  it('the documented load-balancer windows (ALB 60 s, NLB 350 s, 30 s health check) cap the interval at 80 % of the window less 250 ms of slack', () => {
    // keepalive-policy.ts takes LB_SLACK_MS off 0.8 * window, so the caps are 47 750 / 279 750 / 23 750
    // rather than 48 000 / 280 000 / 24 000: still never above lbIdleWindowMs * 0.8.
    expect([LB_WINDOW_SHARE, LB_SLACK_MS]).toEqual([0.8, 250]);
    const wide = { ...KEEPALIVE_DEFAULTS, maxIntervalMs: 3_600_000, deadPeerDetectMs: 3_600_000 };
    const huge = { srttMs: 10_000_000, rttvarMs: 0, samples: 5 };
    for (const [lbIdleWindowMs, capMs] of [
      [60_000, 47_750],
      [350_000, 279_750],
      [30_000, 23_750],
    ] as const) {
      const o = { ...wide, lbIdleWindowMs };
      expect(capMs).toBeLessThanOrEqual(lbIdleWindowMs * 0.8);
      expect(() => validateKeepalivePolicy(o)).not.toThrow();
      expect(keepaliveCapMs(o)).toEqual({ capMs, limitedBy: 'lb-window' });
      // Neither a huge RTT nor a huge crowd goes past the cap.
      expect(decideKeepalive(o, huge, 1)).toEqual({ intervalMs: capMs, idleTimeoutMs: 3 * capMs, limitedBy: 'lb-window', overBudget: false });
      expect(decideKeepalive(o, huge, 10_000_000)).toEqual({ intervalMs: capMs, idleTimeoutMs: 3 * capMs, limitedBy: 'lb-window', overBudget: true });
    }
    expect(keepaliveCapMs({ ...wide, deadPeerDetectMs: 45_000 })).toEqual({ capMs: 15_000, limitedBy: 'dead-peer' });
    expect(keepaliveCapMs({ ...wide, maxIntervalMs: 15_000 })).toEqual({ capMs: 15_000, limitedBy: 'max' });
  });
});

describe('shouldReannounce', () => {
  it('re-announces only when the interval moved by more than 20 %', () => {
    expect(shouldReannounce(1_000, 1_200)).toBe(false);
    expect(shouldReannounce(1_000, 1_201)).toBe(true);
    expect(shouldReannounce(1_000, 800)).toBe(false);
    expect(shouldReannounce(1_000, 799)).toBe(true);
    expect(shouldReannounce(5_000, 6_000)).toBe(false);
    expect(shouldReannounce(5_000, 6_001)).toBe(true);
    expect(shouldReannounce(1_600, 1_400)).toBe(false);
    expect(shouldReannounce(1_000, 1_000)).toBe(false);
  });

  it('always announces when nothing was announced yet', () => {
    expect(shouldReannounce(0, 1_000)).toBe(true);
  });
});

describe('validateKeepalivePolicy', () => {
  it('accepts the defaults', () => {
    expect(() => validateKeepalivePolicy(KEEPALIVE_DEFAULTS)).not.toThrow();
  });

  it.each([
    [{ minIntervalMs: 0 }, 'keepalive.minIntervalMs must be between 1 and 3600000, got 0'],
    [{ maxIntervalMs: 499 }, 'keepalive.maxIntervalMs must be between 500 and 3600000, got 499'],
    [{ lbIdleWindowMs: 999 }, 'keepalive.lbIdleWindowMs must be between 1000 and 86400000, got 999'],
    [{ deadPeerDetectMs: 2 }, 'keepalive.deadPeerDetectMs must be between 3 and 86400000, got 2'],
    [{ heartbeatBudgetPerSec: Number.NaN }, 'keepalive.heartbeatBudgetPerSec must be between 0.01 and 10000000, got NaN'],
    [{ heartbeatBudgetPerSec: 0 }, 'keepalive.heartbeatBudgetPerSec must be between 0.01 and 10000000, got 0'],
    [{ baseIdleMs: Number.POSITIVE_INFINITY }, 'keepalive.baseIdleMs must be between 1 and 86400000, got Infinity'],
    [
      { minIntervalMs: 10_000, maxIntervalMs: 20_000, lbIdleWindowMs: 10_000 },
      'keepalive: the interval cap (7750 ms from lbIdleWindowMs*0.8 - 250 ms, deadPeerDetectMs/3 and maxIntervalMs) is below minIntervalMs (10000 ms); lower minIntervalMs or raise the windows',
    ],
    [
      { deadPeerDetectMs: 1_000 },
      'keepalive: the interval cap (333 ms from lbIdleWindowMs*0.8 - 250 ms, deadPeerDetectMs/3 and maxIntervalMs) is below minIntervalMs (500 ms); lower minIntervalMs or raise the windows',
    ],
  ] as [Partial<KeepalivePolicyOptions>, string][])('rejects %o', (patch, message) => {
    expect(() => validateKeepalivePolicy({ ...KEEPALIVE_DEFAULTS, ...patch })).toThrow(new RangeError(message));
  });
});
