import { describe, expect, it } from 'vitest';
import { RttEstimator } from '../../../src/core/rtt-estimator';

function snapshot(e: RttEstimator): { srttMs: number; rttvarMs: number; samples: number } {
  return { srttMs: e.srttMs, rttvarMs: e.rttvarMs, samples: e.samples };
}

describe('RttEstimator (RFC 6298, alpha = 1/8, beta = 1/4, with 1/n gains while samples are few)', () => {
  it('starts empty: no sample, SRTT and RTTVAR 0', () => {
    expect(snapshot(new RttEstimator())).toEqual({ srttMs: 0, rttvarMs: 0, samples: 0 });
  });

  it('takes the first sample as SRTT = R, RTTVAR = R/2', () => {
    const e = new RttEstimator();
    e.sample(100);
    expect(snapshot(e)).toEqual({ srttMs: 100, rttvarMs: 50, samples: 1 });
  });

  it('updates RTTVAR from the old SRTT first, then SRTT (exact arithmetic)', () => {
    const e = new RttEstimator();
    e.sample(100);
    e.sample(60);
    // 2nd sample, gains 1/2: RTTVAR = 1/2 * 50 + 1/2 * |100 - 60| = 45 (with the new SRTT it would be 35)
    // SRTT = 1/2 * 100 + 1/2 * 60 = 80
    expect(snapshot(e)).toEqual({ srttMs: 80, rttvarMs: 45, samples: 2 });
    e.sample(200);
    // 3rd sample, gains 1/3: RTTVAR = 2/3 * 45 + 1/3 * |80 - 200| = 30 + 40 = 70; SRTT = 2/3 * 80 + 1/3 * 200 = 120
    expect(e.rttvarMs).toBeCloseTo(70, 9);
    expect(e.srttMs).toBeCloseTo(120, 9);
    // From the 9th sample on, the RFC's gains: alpha = 1/8, beta = 1/4.
    for (let i = 0; i < 5; i++) e.sample(120);
    const before = snapshot(e);
    e.sample(200);
    expect(e.rttvarMs).toBeCloseTo(0.75 * before.rttvarMs + 0.25 * Math.abs(before.srttMs - 200), 9);
    expect(e.srttMs).toBeCloseTo(0.875 * before.srttMs + 0.125 * 200, 9);
  });

  it('shrinks RTTVAR fast at first (gains 1/n), then by 3/4 per identical sample, while SRTT stays put', () => {
    const e = new RttEstimator();
    e.sample(20);
    const rttvars: number[] = [];
    for (let i = 0; i < 5; i++) {
      e.sample(20);
      rttvars.push(e.rttvarMs);
    }
    expect(rttvars[0]).toBe(5); // 1/2 * 10
    expect(rttvars[1]).toBeCloseTo(10 / 3, 9); // 2/3 * 5
    expect(rttvars[2]).toBeCloseTo(2.5, 9); // 3/4 * 10/3
    expect(rttvars[3]).toBeCloseTo(1.875, 9); // 3/4 from here on
    expect(rttvars[4]).toBeCloseTo(1.40625, 9);
    expect(e.srttMs).toBe(20);
    expect(e.samples).toBe(6);
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
    expect(snapshot(e)).toEqual({ srttMs: 80, rttvarMs: 45, samples: 2 });
  });
});
