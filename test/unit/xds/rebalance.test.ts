import { describe, expect, it } from 'vitest';
import type { Effects } from '../../../src/core/engine';
import { createHarness, submitAndAssign, T0, type CoreHarness, type HarnessOptions } from '../../support/core-harness';

// The harness collects assignments, cancels and closes but drops goAways, so
// the calls that can ask a session to move take the engine's effects directly.

function rebalance(h: CoreHarness, ownZone: string, healthyZones: string[]): { moved: number; goAways: Effects['goAways']; closed: Effects['closed'] } {
  const moved = h.engine.rebalanceZones(ownZone, healthyZones);
  const { goAways, closed } = h.engine.takeEffects();
  return { moved, goAways, closed };
}

function tickTo(h: CoreHarness, atMs: number): Pick<Effects, 'goAways' | 'closed'> {
  h.clock.set(atMs);
  h.engine.tick();
  const { goAways, closed } = h.engine.takeEffects();
  return { goAways, closed };
}

/** No max-age moves, so only rebalanceZones asks sessions to move. */
const REBALANCE_ONLY: HarnessOptions = { core: { maxSessionAgeMs: 0 } };
/** Sessions never go idle within these tests; the max-age deadline is the first one. */
const MAX_AGE = (maxSessionAgeMs: number, minSessionAgeToMoveMs = 2_000): HarnessOptions => ({
  core: { maxSessionAgeMs, minSessionAgeToMoveMs, keepalive: { minIntervalMs: 1_200_000, maxIntervalMs: 1_200_000, deadPeerDetectMs: 3_600_000, lbIdleWindowMs: 3_600_000, baseIdleMs: 3_600_000 } },
});

describe('rebalanceZones', () => {
  it('asks only the OPEN sessions of another, healthy zone to move', () => {
    const h = createHarness(REBALANCE_ONLY);
    const own = h.open({ zone: 'a' });
    const b = h.open({ zone: 'b' });
    const c = h.open({ zone: 'c' });
    const none = h.open({ zone: '' });
    h.advance(2_000);
    expect(rebalance(h, 'a', ['', 'a', 'b'])).toEqual({
      moved: 1,
      goAways: [{ sessionId: b.id, reason: 'ZONE_REBALANCE', drainDeadlineMs: T0 + 2_000 + 5_000 }],
      // Nothing in flight: drained at once.
      closed: [{ sessionId: b.id, cause: 'DRAINED' }],
    });
    expect([own, b, c, none].map((w) => w.session.lifecycle)).toEqual(['OPEN', 'CLOSED', 'OPEN', 'OPEN']);
    // Zone c has a healthy dispatcher now.
    expect(rebalance(h, 'a', ['a', 'b', 'c'])).toMatchObject({ moved: 1, goAways: [{ sessionId: c.id, reason: 'ZONE_REBALANCE' }] });
    expect(rebalance(h, 'a', ['', 'a', 'b', 'c'])).toEqual({ moved: 0, goAways: [], closed: [] });
    expect([own, none].map((w) => w.session.lifecycle)).toEqual(['OPEN', 'OPEN']);
  });

  it('no healthy zone besides its own, or an empty list: nobody moves', () => {
    const h = createHarness(REBALANCE_ONLY);
    h.open({ zone: 'b' });
    h.advance(10_000);
    expect(rebalance(h, 'a', ['a'])).toEqual({ moved: 0, goAways: [], closed: [] });
    expect(rebalance(h, 'a', [])).toEqual({ moved: 0, goAways: [], closed: [] });
  });

  it('a session younger than minSessionAgeToMoveMs stays; at exactly that age it moves', () => {
    const h = createHarness(REBALANCE_ONLY);
    const b = h.open({ zone: 'b' });
    h.advance(1_999);
    expect(rebalance(h, 'a', ['b'])).toEqual({ moved: 0, goAways: [], closed: [] });
    expect(b.session.lifecycle).toBe('OPEN');
    h.advance(1);
    expect(rebalance(h, 'a', ['b']).goAways).toEqual([{ sessionId: b.id, reason: 'ZONE_REBALANCE', drainDeadlineMs: T0 + 2_000 + 5_000 }]);
  });

  it('minSessionAgeToMoveMs is configurable', () => {
    const h = createHarness({ core: { maxSessionAgeMs: 0, minSessionAgeToMoveMs: 10_000 } });
    h.open({ zone: 'b' });
    h.advance(9_999);
    expect(rebalance(h, 'a', ['b']).moved).toBe(0);
    h.advance(1);
    expect(rebalance(h, 'a', ['b']).moved).toBe(1);
  });

  it('a moved session with work in flight drains: no new tasks, its task completes, then it closes', () => {
    const h = createHarness(REBALANCE_ONLY);
    const b = h.open({ zone: 'b', slots: 2 });
    const held = submitAndAssign(h, b);
    b.running(held, 3);
    const own = h.open({ zone: 'a', slots: 2 });
    h.advance(2_000);

    expect(rebalance(h, 'a', ['a', 'b'])).toEqual({
      moved: 1,
      goAways: [{ sessionId: b.id, reason: 'ZONE_REBALANCE', drainDeadlineMs: T0 + 7_000 }],
      closed: [],
    });
    expect([b.session.lifecycle, b.session.drainDeadlineMs, b.session.credit]).toEqual(['DRAINING', T0 + 7_000, 0]);

    // New work goes elsewhere although b still had a free slot.
    const next = h.submit();
    expect(h.dispatch()).toMatchObject([{ taskId: next.id, sessionId: own.id }]);

    // The in-flight task finishes normally on the draining session.
    expect(b.complete(held, 4)).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: 4 });
    expect(held.task.state).toBe('COMPLETED');
    expect(h.takeClosed()).toEqual([{ sessionId: b.id, cause: 'DRAINED' }]);
    expect(b.session.lifecycle).toBe('CLOSED');
  });

  it('when the drain grace runs out, the unfinished task is re-queued, not lost', () => {
    const h = createHarness(REBALANCE_ONLY);
    const b = h.open({ zone: 'b' });
    const held = submitAndAssign(h, b);
    b.running(held, 3);
    h.advance(2_000);
    expect(rebalance(h, 'a', ['b']).moved).toBe(1);
    h.advance(4_999);
    expect([b.session.lifecycle, held.task.state]).toEqual(['DRAINING', 'RUNNING']);
    h.advance(1);
    expect(h.takeClosed()).toEqual([{ sessionId: b.id, cause: 'DRAIN_EXPIRED' }]);
    expect([held.task.state, held.task.attempt, held.task.error?.reason]).toEqual(['PENDING', 2, 'LEASE_LOST']);
    const back = h.open({ zone: 'b' });
    expect(h.dispatch()).toMatchObject([{ taskId: held.taskId, sessionId: back.id, attempt: 2 }]);
  });

  it('a session that is already DRAINING (the worker asked) is not asked again', () => {
    const h = createHarness(REBALANCE_ONLY);
    const b = h.open({ zone: 'b' });
    submitAndAssign(h, b);
    h.advance(2_000);
    h.drain(b);
    expect(rebalance(h, 'a', ['b'])).toEqual({ moved: 0, goAways: [], closed: [] });
  });
});

describe("the 'maxAge' deadline", () => {
  it('moves a session with MAX_SESSION_AGE at a jittered instant within 90..100 % of maxSessionAgeMs', () => {
    const h = createHarness(MAX_AGE(60_000));
    const w = h.open({ zone: 'a' });
    const at = h.engine.nextWakeAtMs()!;
    expect(at).toBeGreaterThanOrEqual(T0 + 54_000);
    expect(at).toBeLessThanOrEqual(T0 + 60_000);

    expect(tickTo(h, at - 1)).toEqual({ goAways: [], closed: [] });
    expect(w.session.lifecycle).toBe('OPEN');
    expect(tickTo(h, at)).toEqual({
      goAways: [{ sessionId: w.id, reason: 'MAX_SESSION_AGE', drainDeadlineMs: at + 5_000 }],
      closed: [{ sessionId: w.id, cause: 'DRAINED' }],
    });
  });

  it('the jitter comes from the session id: deterministic, and spread over sessions', () => {
    const moveTimes = (): Record<string, number> => {
      const h = createHarness(MAX_AGE(60_000));
      for (let i = 0; i < 10; i++) h.open({ zone: 'a' });
      const out: Record<string, number> = {};
      for (let at = h.engine.nextWakeAtMs()!; at <= T0 + 60_000; at = h.engine.nextWakeAtMs()!) {
        for (const g of tickTo(h, at).goAways) {
          expect(g.reason).toBe('MAX_SESSION_AGE');
          out[g.sessionId] = at;
        }
      }
      return out;
    };
    const first = moveTimes();
    expect(Object.keys(first)).toHaveLength(10);
    for (const at of Object.values(first)) {
      expect(at).toBeGreaterThanOrEqual(T0 + 54_000);
      expect(at).toBeLessThanOrEqual(T0 + 60_000);
    }
    expect(new Set(Object.values(first)).size).toBe(10);
    // Same ids, same instants (the injected random is not used for it).
    expect(moveTimes()).toEqual(first);
  });

  it('never before minSessionAgeToMoveMs, even when maxSessionAgeMs is smaller', () => {
    const h = createHarness(MAX_AGE(1_000, 2_000));
    const w1 = h.open();
    const w2 = h.open();
    expect(h.engine.nextWakeAtMs()).toBe(T0 + 2_000);
    expect(tickTo(h, T0 + 1_999)).toEqual({ goAways: [], closed: [] });
    expect(tickTo(h, T0 + 2_000).goAways).toEqual([
      { sessionId: w1.id, reason: 'MAX_SESSION_AGE', drainDeadlineMs: T0 + 7_000 },
      { sessionId: w2.id, reason: 'MAX_SESSION_AGE', drainDeadlineMs: T0 + 7_000 },
    ]);
  });

  it('maxSessionAgeMs 0 disables it', () => {
    const h = createHarness(MAX_AGE(0));
    const w = h.open();
    // No max-age deadline: the first is the heartbeat (20 min here), then the idle one.
    expect(h.engine.nextWakeAtMs()).toBe(T0 + 1_200_000);
    expect(tickTo(h, T0 + 3_599_999)).toEqual({ goAways: [], closed: [] });
    expect(w.session.lifecycle).toBe('OPEN');
  });

  it('a session with work in flight drains, and its task still completes', () => {
    const h = createHarness(MAX_AGE(60_000));
    const w = h.open({ slots: 2 });
    const held = submitAndAssign(h, w);
    w.running(held, 3);
    const at = h.engine.nextWakeAtMs()!;
    expect(tickTo(h, at)).toEqual({ goAways: [{ sessionId: w.id, reason: 'MAX_SESSION_AGE', drainDeadlineMs: at + 5_000 }], closed: [] });
    expect(w.session.lifecycle).toBe('DRAINING');
    h.submit();
    expect(h.dispatch()).toEqual([]);
    expect(w.complete(held, 4).result).toBe('ACCEPTED');
    expect(held.task.state).toBe('COMPLETED');
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'DRAINED' }]);
  });

  it('a session already moved, draining or closed is not asked again when its age is reached', () => {
    const h = createHarness(MAX_AGE(60_000));
    const moved = h.open({ zone: 'b' });
    submitAndAssign(h, moved);
    const draining = h.open({ zone: 'a' });
    submitAndAssign(h, draining);
    const closed = h.open({ zone: 'a' });
    h.advance(2_000);
    expect(rebalance(h, 'a', ['b']).goAways.map((g) => g.sessionId)).toEqual([moved.id]);
    h.drain(draining, 3_600_000);
    h.close(closed);
    // Past every max-age deadline (and the drain grace of `moved`): no GoAway, only the expired drain.
    expect(tickTo(h, T0 + 60_000)).toEqual({ goAways: [], closed: [{ sessionId: moved.id, cause: 'DRAIN_EXPIRED' }] });
    expect([moved.session.lifecycle, draining.session.lifecycle, closed.session.lifecycle]).toEqual(['CLOSED', 'DRAINING', 'CLOSED']);
  });
});
