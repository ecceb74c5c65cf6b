import { describe, expect, it } from 'vitest';
import { StallDetector } from '../../../src/xds/stall-detector';

describe('StallDetector', () => {
  it('sees no stall while observations come about every tick, late by less than the tolerance', () => {
    const d = new StallDetector(100, 50);
    for (const t of [0, 100, 230, 300, 449, 500]) expect(d.observe(t)).toBeUndefined();
  });

  it('reports a stall from when the next tick was due until the first observation after it', () => {
    const d = new StallDetector(100, 50);
    d.observe(1_000);
    expect(d.observe(2_600)).toEqual({ fromMs: 1_100, toMs: 2_600 });
    expect(d.observe(2_650)).toBeUndefined();
  });

  it('a clock that goes back is no stall and does not move the last observation back', () => {
    const d = new StallDetector(100, 50);
    d.observe(1_000);
    expect(d.observe(900)).toBeUndefined();
    expect(d.observe(1_100)).toBeUndefined();
  });

  it('after forget, the next observation starts afresh: the time unwatched is no stall', () => {
    const d = new StallDetector(100, 50);
    d.observe(1_000);
    d.forget();
    expect(d.observe(60_000)).toBeUndefined();
    expect(d.observe(61_000)).toEqual({ fromMs: 60_100, toMs: 61_000 });
  });
});
