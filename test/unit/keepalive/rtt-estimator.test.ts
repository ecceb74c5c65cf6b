import { describe, expect, it } from 'vitest';
import { RttEstimator, WARMUP_SAMPLES } from '../../../src/core/rtt-estimator';

function snapshot(e: RttEstimator): { srttMs: number; rttvarMs: number; samples: number } {
  return { srttMs: e.srttMs, rttvarMs: e.rttvarMs, samples: e.samples };
}

describe('RttEstimator (RFC 6298, alpha = 1/8, beta = 1/4, after a median warm-up)', () => {
  it('starts empty: no sample, SRTT and RTTVAR 0', () => {
    expect(snapshot(new RttEstimator())).toEqual({ srttMs: 0, rttvarMs: 0, samples: 0 });
  });

  it('takes the first sample as SRTT = R, RTTVAR = R/2', () => {
    const e = new RttEstimator();
    e.sample(100);
    expect(snapshot(e)).toEqual({ srttMs: 100, rttvarMs: 50, samples: 1 });
  });

  it('during the warm-up, SRTT is the median of the samples and RTTVAR their mean deviation from it', () => {
    const e = new RttEstimator();
    e.sample(100);
    e.sample(60);
    // median of [100, 60] = 80; deviations 20 and 20
    expect(snapshot(e)).toEqual({ srttMs: 80, rttvarMs: 20, samples: 2 });
    e.sample(200);
    // median of [60, 100, 200] = 100; deviations 40, 0, 100
    expect(e.srttMs).toBe(100);
    expect(e.rttvarMs).toBeCloseTo(140 / 3, 9);
  });

  it('a slow first sample does not move SRTT once there are three, and costs RTTVAR only 1/n', () => {
    const e = new RttEstimator();
    for (const r of [90, 20, 21, 19, 20, 22, 18, 20]) e.sample(r);
    expect(e.samples).toBe(WARMUP_SAMPLES);
    expect(e.srttMs).toBe(20);
    // deviations 70, 0, 1, 1, 0, 2, 2, 0
    expect(e.rttvarMs).toBe(76 / 8);
  });

  it('after the warm-up, the RFC update: RTTVAR from the old SRTT first, then SRTT (exact arithmetic)', () => {
    const e = new RttEstimator();
    for (let i = 0; i < WARMUP_SAMPLES; i++) e.sample(120);
    expect(snapshot(e)).toEqual({ srttMs: 120, rttvarMs: 0, samples: WARMUP_SAMPLES });
    e.sample(200);
    expect(e.rttvarMs).toBeCloseTo(0.25 * 80, 9);
    expect(e.srttMs).toBeCloseTo(0.875 * 120 + 0.125 * 200, 9);
    const before = snapshot(e);
    e.sample(100);
    expect(e.rttvarMs).toBeCloseTo(0.75 * before.rttvarMs + 0.25 * Math.abs(before.srttMs - 100), 9);
    expect(e.srttMs).toBeCloseTo(0.875 * before.srttMs + 0.125 * 100, 9);
  });

  it('accepts a zero sample (same-instant answer)', () => {
    const e = new RttEstimator();
    e.sample(0);
    expect(snapshot(e)).toEqual({ srttMs: 0, rttvarMs: 0, samples: 1 });
    e.sample(8);
    expect(snapshot(e)).toEqual({ srttMs: 4, rttvarMs: 4, samples: 2 });
  });

  it('ignores negative, NaN and infinite samples, before and after the first one', () => {
    const e = new RttEstimator();
    for (const bad of [-1, -0.001, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) e.sample(bad);
    expect(snapshot(e)).toEqual({ srttMs: 0, rttvarMs: 0, samples: 0 });

    e.sample(100);
    for (const bad of [-5, Number.NaN, Number.POSITIVE_INFINITY]) e.sample(bad);
    expect(snapshot(e)).toEqual({ srttMs: 100, rttvarMs: 50, samples: 1 });
    e.sample(60);
    expect(snapshot(e)).toEqual({ srttMs: 80, rttvarMs: 20, samples: 2 });
  });
});
