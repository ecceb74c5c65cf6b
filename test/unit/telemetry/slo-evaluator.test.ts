import { describe, expect, it } from 'vitest';
import { compileSloThresholds } from '../../../src/config/slo-thresholds';
import type { PairSummary } from '../../../src/telemetry/latency-matrix';
import { evaluateSlo, NO_BREACHES, sloKey, type SloState } from '../../../src/telemetry/slo-evaluator';

const MIN = 20;

function pair(from: string, to: string, p99Ms: number, overrides: Partial<PairSummary> = {}): PairSummary {
  return { from, to, count: 100, valueMs: p99Ms, p50Ms: p99Ms / 4, p95Ms: p99Ms / 2, p99Ms, meanMs: p99Ms / 4, ...overrides };
}

const P99_100 = compileSloThresholds({ defaultP99Ms: 100 });

describe('evaluateSlo: p99', () => {
  it('a pair over its p99 objective starts a breach', () => {
    const { state, transitions } = evaluateSlo([pair('a', 'b', 101)], P99_100, NO_BREACHES, MIN);
    expect(transitions).toEqual([{ kind: 'breach', from: 'a', to: 'b', quantile: 'p99', valueMs: 101, thresholdMs: 100, count: 100 }]);
    expect([...state.breaching]).toEqual([sloKey('a', 'b', 'p99')]);
    expect(sloKey('a', 'b', 'p99')).toBe('a->b|p99');
  });

  it('exactly at the objective is not a breach', () => {
    const { state, transitions } = evaluateSlo([pair('a', 'b', 100)], P99_100, NO_BREACHES, MIN);
    expect(transitions).toEqual([]);
    expect(state.breaching.size).toBe(0);
  });

  it('a breach is reported once, not at every call while it lasts', () => {
    let state: SloState = NO_BREACHES;
    const seen: string[] = [];
    for (const p99 of [150, 160, 300, 101]) {
      const out = evaluateSlo([pair('a', 'b', p99)], P99_100, state, MIN);
      state = out.state;
      seen.push(...out.transitions.map((t) => `${t.kind}@${t.valueMs}`));
    }
    expect(seen).toEqual(['breach@150']);
    expect(state.breaching.has('a->b|p99')).toBe(true);
  });

  it('recovers when back at or under the objective, and can breach again', () => {
    const breached = evaluateSlo([pair('a', 'b', 150)], P99_100, NO_BREACHES, MIN).state;
    const back = evaluateSlo([pair('a', 'b', 100, { count: 40 })], P99_100, breached, MIN);
    expect(back.transitions).toEqual([{ kind: 'recovery', from: 'a', to: 'b', quantile: 'p99', valueMs: 100, thresholdMs: 100, count: 40 }]);
    expect(back.state.breaching.size).toBe(0);
    const again = evaluateSlo([pair('a', 'b', 120)], P99_100, back.state, MIN);
    expect(again.transitions.map((t) => t.kind)).toEqual(['breach']);
  });

  it('uses a pair\'s own p99 objective over the default', () => {
    const thresholds = compileSloThresholds({ defaultP99Ms: 100, pairs: { 'a->b': { p99Ms: 500 } } });
    const { transitions } = evaluateSlo([pair('a', 'b', 400), pair('a', 'c', 400)], thresholds, NO_BREACHES, MIN);
    expect(transitions.map((t) => [t.from, t.to, t.thresholdMs])).toEqual([['a', 'c', 100]]);
  });

  it('judges each pair on its own', () => {
    const { transitions } = evaluateSlo([pair('a', 'b', 50), pair('a', 'c', 150), pair('b', 'c', 200)], P99_100, NO_BREACHES, MIN);
    expect(transitions.map((t) => `${t.from}->${t.to}`)).toEqual(['a->c', 'b->c']);
  });

  it('does not change the previous state it was given', () => {
    const previous: SloState = { breaching: new Set(['a->b|p99']) };
    evaluateSlo([pair('a', 'b', 10), pair('c', 'd', 500)], P99_100, previous, MIN);
    expect([...previous.breaching]).toEqual(['a->b|p99']);
    expect(NO_BREACHES.breaching.size).toBe(0);
  });
});

describe('evaluateSlo: minSamples', () => {
  it('does not judge a pair with fewer than minSamples samples', () => {
    const { state, transitions } = evaluateSlo([pair('a', 'b', 10_000, { count: MIN - 1 })], P99_100, NO_BREACHES, MIN);
    expect(transitions).toEqual([]);
    expect(state.breaching.size).toBe(0);
  });

  it('judges a pair with exactly minSamples samples', () => {
    expect(evaluateSlo([pair('a', 'b', 10_000, { count: MIN })], P99_100, NO_BREACHES, MIN).transitions).toHaveLength(1);
  });

  it('a breaching pair with too few samples (or none) stays in breach until judged again', () => {
    let state = evaluateSlo([pair('a', 'b', 500)], P99_100, NO_BREACHES, MIN).state;
    // Quiet: few samples, all fast. No recovery on noise.
    let out = evaluateSlo([pair('a', 'b', 1, { count: 3 })], P99_100, state, MIN);
    expect(out.transitions).toEqual([]);
    expect(out.state.breaching.has('a->b|p99')).toBe(true);
    // No samples at all: the pair is not even listed.
    out = evaluateSlo([], P99_100, out.state, MIN);
    expect(out.state.breaching.has('a->b|p99')).toBe(true);
    state = out.state;
    // Enough samples again: judged, recovered.
    out = evaluateSlo([pair('a', 'b', 1, { count: MIN })], P99_100, state, MIN);
    expect(out.transitions.map((t) => t.kind)).toEqual(['recovery']);
    expect(out.state.breaching.size).toBe(0);
  });

  it('a healthy pair with too few samples does not breach on a slow outlier', () => {
    const healthy = evaluateSlo([pair('a', 'b', 10)], P99_100, NO_BREACHES, MIN).state;
    const out = evaluateSlo([pair('a', 'b', 9_000, { count: 2 })], P99_100, healthy, MIN);
    expect(out.transitions).toEqual([]);
    expect(out.state.breaching.size).toBe(0);
  });
});

describe('evaluateSlo: p95', () => {
  it('is not judged without a p95 objective, however high', () => {
    const { transitions } = evaluateSlo([pair('a', 'b', 50, { p95Ms: 99_999 })], P99_100, NO_BREACHES, MIN);
    expect(transitions).toEqual([]);
  });

  it('is judged against slo.defaultP95Ms for every pair', () => {
    const thresholds = compileSloThresholds({ defaultP99Ms: 100, defaultP95Ms: 40 });
    const { state, transitions } = evaluateSlo([pair('a', 'b', 90, { p95Ms: 41 }), pair('a', 'c', 90, { p95Ms: 40 })], thresholds, NO_BREACHES, MIN);
    expect(transitions).toEqual([{ kind: 'breach', from: 'a', to: 'b', quantile: 'p95', valueMs: 41, thresholdMs: 40, count: 100 }]);
    expect([...state.breaching]).toEqual(['a->b|p95']);
  });

  it('is judged only for the pair that sets p95Ms when there is no default', () => {
    const thresholds = compileSloThresholds({ defaultP99Ms: 100, pairs: { 'a->b': { p99Ms: 100, p95Ms: 30 } } });
    const { transitions } = evaluateSlo([pair('a', 'b', 90, { p95Ms: 60 }), pair('c', 'd', 90, { p95Ms: 60 })], thresholds, NO_BREACHES, MIN);
    expect(transitions.map((t) => [t.from, t.to, t.quantile, t.thresholdMs])).toEqual([['a', 'b', 'p95', 30]]);
  });

  it('a pair\'s p95Ms wins over the default', () => {
    const thresholds = compileSloThresholds({ defaultP99Ms: 1_000, defaultP95Ms: 10, pairs: { 'a->b': { p99Ms: 1_000, p95Ms: 80 } } });
    const { transitions } = evaluateSlo([pair('a', 'b', 100, { p95Ms: 50 }), pair('a', 'c', 100, { p95Ms: 50 })], thresholds, NO_BREACHES, MIN);
    expect(transitions.map((t) => [t.to, t.quantile, t.thresholdMs])).toEqual([['c', 'p95', 10]]);
  });

  it('p99 and p95 breach and recover separately, p99 first', () => {
    const thresholds = compileSloThresholds({ defaultP99Ms: 100, defaultP95Ms: 50 });
    const both = evaluateSlo([pair('a', 'b', 200, { p95Ms: 80 })], thresholds, NO_BREACHES, MIN);
    expect(both.transitions.map((t) => `${t.kind}:${t.quantile}`)).toEqual(['breach:p99', 'breach:p95']);
    const p99Back = evaluateSlo([pair('a', 'b', 100, { p95Ms: 80 })], thresholds, both.state, MIN);
    expect(p99Back.transitions.map((t) => `${t.kind}:${t.quantile}`)).toEqual(['recovery:p99']);
    expect([...p99Back.state.breaching]).toEqual(['a->b|p95']);
  });

  it('removing the p95 objective ends its breach (a recovery with threshold 0)', () => {
    const withP95 = compileSloThresholds({ defaultP99Ms: 100, defaultP95Ms: 50 });
    const breached = evaluateSlo([pair('a', 'b', 90, { p95Ms: 80 })], withP95, NO_BREACHES, MIN).state;
    const { state, transitions } = evaluateSlo([pair('a', 'b', 90, { p95Ms: 80 })], P99_100, breached, MIN);
    expect(transitions).toEqual([{ kind: 'recovery', from: 'a', to: 'b', quantile: 'p95', valueMs: 80, thresholdMs: 0, count: 100 }]);
    expect(state.breaching.size).toBe(0);
  });
});
