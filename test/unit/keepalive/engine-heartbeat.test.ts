import { describe, expect, it } from 'vitest';
import { decideKeepalive, type KeepalivePolicyOptions } from '../../../src/core/keepalive-policy';
import { RttEstimator } from '../../../src/core/rtt-estimator';
import { createHarness, submitAndAssign, T0, type CoreHarness, type WorkerStream } from '../../support/core-harness';

/**
 * Round numbers through the Engine: with no RTT sample a session gets
 * minIntervalMs = 1 000 ms and idle = max(3 * 1 000, baseIdleMs 5 000) = 5 000 ms;
 * caps 15 000 (max, deadPeer/3) and 48 000 (LB) are far away.
 */
const KA: KeepalivePolicyOptions = {
  minIntervalMs: 1_000,
  maxIntervalMs: 15_000,
  lbIdleWindowMs: 60_000,
  deadPeerDetectMs: 45_000,
  heartbeatBudgetPerSec: 2_000,
  baseIdleMs: 5_000,
};

/** The same, with a budget of one heartbeat per second: n sessions stretch the interval to n * 1 000 ms. */
const KA_BUDGET_1: KeepalivePolicyOptions = { ...KA, heartbeatBudgetPerSec: 1 };

function harness(keepalive: KeepalivePolicyOptions = KA): CoreHarness {
  return createHarness({ core: { keepalive } });
}

/** Moves time to T0 + `toMs` in `stepMs` steps, ticking the engine, and calls `each` after every tick. */
function stepTo(h: CoreHarness, toMs: number, stepMs: number, each: (tMs: number) => void = () => {}): void {
  for (let t = h.now - T0 + stepMs; t <= toMs; t += stepMs) {
    h.advanceTo(T0 + t);
    each(t);
  }
}

function keepalive(w: WorkerStream): [number, number, number] {
  return [w.session.intervalMs, w.session.idleTimeoutMs, w.session.announcedIntervalMs];
}

describe('Welcome values', () => {
  it('openSession sets the interval and idle timeout of decideKeepalive with no sample (what Welcome carries)', () => {
    const h = harness();
    const w = h.open();
    expect(keepalive(w)).toEqual([1_000, 5_000, 1_000]);
    const d = decideKeepalive(h.options.keepalive, new RttEstimator(), 1);
    expect([w.session.intervalMs, w.session.idleTimeoutMs]).toEqual([d.intervalMs, d.idleTimeoutMs]);
    expect(w.session.rtt.samples).toBe(0);
    expect(h.takeKeepaliveUpdates()).toEqual([]);
    expect(h.takePings()).toEqual([]);
  });

  it('counts the new session in the budget, and re-announces older sessions at their next heartbeat', () => {
    const h = harness(KA_BUDGET_1);
    const ws = [h.open(), h.open(), h.open()];
    expect(ws.map(keepalive)).toEqual([
      [1_000, 5_000, 1_000],
      [2_000, 6_000, 2_000],
      [3_000, 9_000, 3_000],
    ]);
    ws.forEach((w, i) => {
      const d = decideKeepalive(h.options.keepalive, new RttEstimator(), i + 1);
      expect([w.session.intervalMs, w.session.idleTimeoutMs]).toEqual([d.intervalMs, d.idleTimeoutMs]);
    });
    expect(h.takeKeepaliveUpdates()).toEqual([]);

    // w1's first heartbeat: three sessions at 1/s need 3 000 ms; +200 % is re-announced, and
    // with the longer interval its stream is not idle long enough for a ping yet.
    h.advanceTo(T0 + 1_000);
    expect(h.takeKeepaliveUpdates()).toEqual([{ sessionId: ws[0]!.id, intervalMs: 3_000, idleTimeoutMs: 9_000 }]);
    expect(h.takePings()).toEqual([]);
    h.advanceTo(T0 + 2_000);
    expect(h.takeKeepaliveUpdates()).toEqual([{ sessionId: ws[1]!.id, intervalMs: 3_000, idleTimeoutMs: 9_000 }]);
    expect(h.takePings()).toEqual([]);
    h.advanceTo(T0 + 3_000);
    expect(h.takeKeepaliveUpdates()).toEqual([]);
    expect(
      h
        .takePings()
        .map((p) => [p.sessionId, p.sentMs])
        .sort(),
    ).toEqual(ws.map((w) => [w.id, T0 + 3_000]).sort());
    expect(ws.map(keepalive)).toEqual(ws.map(() => [3_000, 9_000, 3_000]));
    // 3 sessions / 3 s = the budget of 1 heartbeat per second.
    expect(h.engine.keepaliveOverBudget).toBe(false);
  });
});

describe('explicit heartbeats go only on idle streams', () => {
  it('pings an idle session every interval and never a busy one, until it goes quiet', () => {
    const h = harness();
    const idle = h.open();
    const busy = h.open();
    stepTo(h, 10_000, 100, (t) => {
      if (t % 500 === 0) h.engine.noteOutbound(busy.session); // the adapter writes to it every 500 ms
      h.engine.touch(busy.session);
      idle.touch(); // a live worker: answers the ping at once (RTT 0)
    });
    const pings = h.takePings();
    expect(pings).toEqual(Array.from({ length: 10 }, (_, i) => ({ sessionId: idle.id, nonce: i + 1, sentMs: T0 + 1_000 * (i + 1) })));
    expect([idle.session.pingsSent, busy.session.pingsSent]).toEqual([10, 0]);
    expect([idle.session.rtt.samples, busy.session.rtt.samples]).toEqual([10, 0]);
    expect(keepalive(idle)).toEqual([1_000, 5_000, 1_000]);
    expect(h.takeKeepaliveUpdates()).toEqual([]);
    expect(h.takeClosed()).toEqual([]);

    // The busy stream goes quiet after its last write at 10 s: its first ping follows one interval later.
    stepTo(h, 11_000, 100, () => {
      h.engine.touch(busy.session);
      idle.touch();
    });
    const later = h.takePings();
    expect(later.filter((p) => p.sessionId === busy.id).map((p) => p.sentMs)).toEqual([T0 + 11_000]);
    expect(later.filter((p) => p.sessionId === idle.id).map((p) => p.sentMs)).toEqual([T0 + 11_000]);
  });
});

describe('Pong', () => {
  it('answering the outstanding ping is an RTT sample; a > 20 % move is re-announced, a small one is not', () => {
    const h = harness();
    const w = h.open();
    h.advanceTo(T0 + 999);
    expect(h.takePings()).toEqual([]);
    h.advanceTo(T0 + 1_000);
    expect(h.takePings()).toEqual([{ sessionId: w.id, nonce: 1, sentMs: T0 + 1_000 }]);
    expect(w.session.outstandingPing).toEqual({ nonce: 1, sentMs: T0 + 1_000 });

    // Pong after 400 ms: SRTT 400, RTTVAR 200 -> 2*400 + 4*200 = 1 600 ms (+60 %).
    h.clock.set(T0 + 1_400);
    h.engine.touch(w.session);
    h.engine.pong(w.session, 1);
    h.collect();
    expect(w.session.outstandingPing).toBeUndefined();
    expect([w.session.rtt.srttMs, w.session.rtt.rttvarMs, w.session.rtt.samples]).toEqual([400, 200, 1]);
    expect(keepalive(w)).toEqual([1_600, 5_000, 1_600]);
    expect(h.takeKeepaliveUpdates()).toEqual([{ sessionId: w.id, intervalMs: 1_600, idleTimeoutMs: 5_000 }]);

    // The old 1 000 ms schedule finds the stream written 1 000 ms ago: not idle for 1 600 ms yet.
    h.advanceTo(T0 + 2_000);
    expect(h.takePings()).toEqual([]);
    expect(h.engine.nextWakeAtMs()).toBe(T0 + 2_600);
    h.advanceTo(T0 + 2_600);
    expect(h.takePings()).toEqual([{ sessionId: w.id, nonce: 2, sentMs: T0 + 2_600 }]);

    // 600 ms this time (second sample: the median of 400 and 600 and their mean deviation):
    // SRTT 500, RTTVAR 100 -> 1 000 + 400 = 1 400 ms, -12.5 % of the announced 1 600: not re-announced.
    h.clock.set(T0 + 3_200);
    h.engine.touch(w.session);
    h.engine.pong(w.session, 2);
    h.collect();
    expect([w.session.rtt.srttMs, w.session.rtt.rttvarMs, w.session.rtt.samples]).toEqual([500, 100, 2]);
    expect(keepalive(w)).toEqual([1_400, 5_000, 1_600]);
    expect(h.takeKeepaliveUpdates()).toEqual([]);
    expect(h.takeClosed()).toEqual([]);
  });

  it('ignores a Pong with the wrong nonce, and one with no ping outstanding', () => {
    const h = harness();
    const w = h.open();
    h.clock.set(T0 + 500);
    h.engine.pong(w.session, 1); // nothing outstanding yet
    h.advanceTo(T0 + 1_000);
    expect(h.takePings()).toEqual([{ sessionId: w.id, nonce: 1, sentMs: T0 + 1_000 }]);

    h.clock.set(T0 + 1_400);
    h.engine.pong(w.session, 2);
    h.engine.pong(w.session, 0);
    h.collect();
    expect(w.session.outstandingPing).toEqual({ nonce: 1, sentMs: T0 + 1_000 });
    expect(w.session.rtt.samples).toBe(0);
    expect(keepalive(w)).toEqual([1_000, 5_000, 1_000]);
    expect(h.takeKeepaliveUpdates()).toEqual([]);

    // The right nonce is still accepted afterwards.
    h.engine.pong(w.session, 1);
    expect([w.session.rtt.srttMs, w.session.rtt.samples]).toEqual([400, 1]);
  });
});

describe('dead and stalled sessions', () => {
  it('closes a worker that keeps sending but never answers its ping STALLED once the ping is idleTimeout old, and re-queues its task at once', () => {
    const h = harness();
    const w = h.open();
    const a = submitAndAssign(h, w);
    w.running(a, a.version + 1); // it read its assignment, then stopped reading
    stepTo(h, 5_900, 100, () => w.touchWithoutReading());
    expect(h.takePings()).toEqual([{ sessionId: w.id, nonce: 1, sentMs: T0 + 1_000 }]); // one at a time
    expect(h.takeClosed()).toEqual([]);
    expect(a.task.state).toBe('RUNNING');

    h.advanceTo(T0 + 6_000);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'STALLED' }]);
    expect([a.task.state, a.task.attempt, a.task.sessionId, a.task.notBeforeMs]).toEqual(['PENDING', 2, '', T0 + 6_000]);
    expect(a.task.error).toMatchObject({ reason: 'LEASE_LOST', message: `session ${w.id} of worker worker-1 ended (STALLED)` });
    const w2 = h.open();
    expect(h.dispatch()).toMatchObject([{ taskId: a.taskId, sessionId: w2.id, attempt: 2 }]);
  });

  it('closes a worker that answers pings but never acknowledges its assignment STALLED; one that sent RUNNING stays', () => {
    const h = harness();
    const mute = h.open();
    const a1 = submitAndAssign(h, mute);
    const good = h.open();
    const a2 = submitAndAssign(h, good);
    good.running(a2, a2.version + 1);
    const live = (): void => {
      for (const w of [mute, good]) if (w.session.lifecycle !== 'CLOSED') w.touch();
    };
    stepTo(h, 4_999, 1, live);
    expect(h.takeClosed()).toEqual([]);
    expect(mute.session.rtt.samples).toBe(4); // it does read pings

    h.advanceTo(T0 + 5_000);
    expect(h.takeClosed()).toEqual([{ sessionId: mute.id, cause: 'STALLED' }]);
    expect([a1.task.state, a1.task.attempt, a1.task.notBeforeMs]).toEqual(['PENDING', 2, T0 + 5_000]);
    expect(a1.task.error?.message).toBe(`session ${mute.id} of worker worker-1 ended (STALLED)`);

    stepTo(h, 30_000, 100, live);
    expect(h.takeClosed()).toEqual([]);
    expect([good.session.lifecycle, a2.task.state]).toEqual(['OPEN', 'RUNNING']);
  });

  it('closes a silent worker IDLE (not STALLED) at its idle timeout and re-queues its task at once', () => {
    const h = harness();
    const w = h.open();
    const a = submitAndAssign(h, w); // never acknowledged, ping never answered: but silence is death, not a stall
    stepTo(h, 4_000, 1_000);
    h.advanceTo(T0 + 4_999);
    expect(h.takeClosed()).toEqual([]);
    expect(h.takePings()).toEqual([{ sessionId: w.id, nonce: 1, sentMs: T0 + 1_000 }]);

    h.advanceTo(T0 + 5_000);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'IDLE' }]);
    expect([a.task.state, a.task.attempt, a.task.notBeforeMs]).toEqual(['PENDING', 2, T0 + 5_000]);
    expect(a.task.error?.message).toBe(`session ${w.id} of worker worker-1 ended (IDLE)`);
    h.advanceTo(T0 + 60_000);
    expect(h.takeClosed()).toEqual([]);
    expect(h.takePings()).toEqual([]);
  });

  it('measures silence from the last inbound message, with the idle timeout the RTT gave', () => {
    const h = harness();
    const w = h.open();
    h.advanceTo(T0 + 1_000);
    h.clock.set(T0 + 3_000);
    w.touch(); // answers the 1 s ping after 2 s: 2*2000 + 4*1000 = 8 000 ms, idle 24 000
    expect(keepalive(w)).toEqual([8_000, 24_000, 8_000]);
    expect(h.takeKeepaliveUpdates()).toEqual([{ sessionId: w.id, intervalMs: 8_000, idleTimeoutMs: 24_000 }]);
    stepTo(h, 26_000, 1_000);
    h.advanceTo(T0 + 26_999);
    expect(h.takeClosed()).toEqual([]);
    // The next ping went one interval after the first; it is unanswered but only 18 s old.
    expect(h.takePings().map((p) => [p.nonce, p.sentMs])).toEqual([
      [1, T0 + 1_000],
      [2, T0 + 9_000],
    ]);
    h.advanceTo(T0 + 27_000);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'IDLE' }]);
  });
});

describe('regressions (fixed)', () => {
  it('does not close a healthy worker IDLE when the budget shrinks its interval (the shorter idle timeout is applied retroactively)', () => {
    const h = harness(KA_BUDGET_1);
    const others = Array.from({ length: 5 }, () => h.open());
    const w = h.open();
    expect(keepalive(w)).toEqual([6_000, 18_000, 6_000]); // 6 sessions at 1 heartbeat/s
    h.advanceTo(T0 + 6_000);
    expect(h.takePings().filter((p) => p.sessionId === w.id)).toEqual([{ sessionId: w.id, nonce: expect.any(Number), sentMs: T0 + 6_000 }]);
    h.clock.set(T0 + 6_010);
    w.touch(); // answers within 10 ms
    expect(keepalive(w)).toEqual([6_000, 18_000, 6_000]);
    h.clock.set(T0 + 7_000);
    for (const o of others) h.close(o); // the crowd leaves
    h.takeClosed();
    h.takeKeepaliveUpdates(); // the others' re-announcements at their first heartbeats

    // w's next heartbeat (6 s after the last ping): alone, it gets 1 000 / 5 000 ms. It was
    // told 6 000 / 18 000 ms and answered 5 990 ms ago, so it is alive; it should get the
    // new interval and a ping, not be closed.
    h.advanceTo(T0 + 12_000);
    expect(h.takeKeepaliveUpdates()).toEqual([{ sessionId: w.id, intervalMs: 1_000, idleTimeoutMs: 5_000 }]);
    expect(h.takeClosed()).toEqual([]);
  });

  it('clears keepaliveOverBudget once no session is left', () => {
    // Budget 1/s with deadPeerDetectMs 2 400 (cap 800 ms): even one session is over budget.
    const h = harness({ ...KA, minIntervalMs: 500, deadPeerDetectMs: 2_400, heartbeatBudgetPerSec: 1 });
    const w = h.open();
    expect(w.session.intervalMs).toBe(800);
    expect(h.engine.keepaliveOverBudget).toBe(true);
    h.close(w);
    expect(h.engine.sessionCount).toBe(0);
    expect(h.engine.keepaliveOverBudget).toBe(false);
  });
});
