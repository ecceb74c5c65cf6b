import { describe, expect, it } from 'vitest';
import { compileCoreOptions, type CoreOptionsInput } from '../../src/core/options';
import { CoreHarness, SEED_KEEPALIVE } from '../support/core-harness';

/** Core options changed while sessions run (a runtime config update): nothing reconnects. */
function retune(h: CoreHarness, input: CoreOptionsInput): void {
  const current = h.engine.coreOptions;
  h.engine.setOptions(
    compileCoreOptions({ ...current, ...input, keepalive: { ...current.keepalive, ...input.keepalive }, backoff: { ...current.backoff, ...input.backoff } }),
  );
  h.collect();
}

describe('keepalive bounds changed live', () => {
  it('re-decides every session, tells each worker once, and the next heartbeats follow the new interval', () => {
    const h = new CoreHarness();
    const a = h.open();
    const b = h.open();
    expect(a.session.intervalMs).toBe(15_000);
    retune(h, { keepalive: { minIntervalMs: 2_000, maxIntervalMs: 2_000, baseIdleMs: 6_000 } });
    expect(h.takeKeepaliveUpdates()).toEqual([
      { sessionId: a.id, intervalMs: 2_000, idleTimeoutMs: 6_000 },
      { sessionId: b.id, intervalMs: 2_000, idleTimeoutMs: 6_000 },
    ]);
    expect(a.session.id).toBe(a.id);
    // Within 2 s, not 15 s, each idle session gets a heartbeat; then one every 2 s, not two.
    h.advance(2_000);
    expect(h.takePings().map((p) => p.sessionId).sort()).toEqual([a.id, b.id].sort());
    a.touch();
    b.touch();
    h.advance(2_000);
    expect(h.takePings()).toHaveLength(2);
    a.touch();
    b.touch();
    h.advance(1_999);
    expect(h.takePings()).toHaveLength(0);
  });

  it('a lower idle floor takes effect without cutting a session that was inside the old window', () => {
    const h = new CoreHarness();
    const w = h.open();
    expect(w.session.idleTimeoutMs).toBe(45_000);
    h.advance(10_000);
    retune(h, { keepalive: { ...SEED_KEEPALIVE, minIntervalMs: 1_000, maxIntervalMs: 1_000, baseIdleMs: 3_000 } });
    expect(w.session.idleTimeoutMs).toBe(3_000);
    // The worker was told; it is not declared dead for silence it kept under the old rules.
    expect(h.takeKeepaliveUpdates()).toEqual([{ sessionId: w.id, intervalMs: 1_000, idleTimeoutMs: 3_000 }]);
    expect(h.takeClosed()).toEqual([]);
    h.advance(3_000);
    expect(h.takeClosed()).toEqual([{ sessionId: w.id, cause: 'IDLE' }]);
  });

  it('an unchanged keepalive is not re-announced', () => {
    const h = new CoreHarness();
    h.open();
    retune(h, { drainGraceMs: 1_000 });
    expect(h.takeKeepaliveUpdates()).toEqual([]);
  });
});

describe('slot limit changed live', () => {
  it('caps running sessions at once and gives the slots back when raised', () => {
    const h = new CoreHarness();
    const w = h.open({ slots: 4 });
    retune(h, { maxSlotsPerSession: 1 });
    for (let i = 0; i < 4; i++) h.submit();
    expect(h.dispatch()).toHaveLength(1);
    retune(h, { maxSlotsPerSession: 10 });
    expect(h.dispatch()).toHaveLength(3);
    expect(w.heldCount).toBe(4);
  });

  it('a worker asking for more than the limit is capped, not refused', () => {
    const h = new CoreHarness({ core: { maxSlotsPerSession: 2 } });
    const w = h.open({ slots: 50 });
    for (let i = 0; i < 5; i++) h.submit();
    expect(h.dispatch()).toHaveLength(2);
    h.setSlots(w, 1);
    expect(w.session.slots).toBe(1);
  });
});

describe('zone spillover delay', () => {
  it('a task waits for a session of its zone up to the delay, then any zone takes it', () => {
    const h = new CoreHarness({ core: { zoneSpilloverDelayMs: 500 } });
    const other = h.open({ zone: 'b' });
    const t = h.submit({ preferredZone: 'a' });
    expect(h.dispatch()).toEqual([]);
    h.advance(499);
    expect(h.takeAssignments()).toEqual([]);
    expect(t.state).toBe('PENDING');
    h.advance(1);
    expect(h.takeAssignments()).toMatchObject([{ taskId: t.id, sessionId: other.id }]);
  });

  it('a session of the zone that frees up within the delay gets the task', () => {
    const h = new CoreHarness({ core: { zoneSpilloverDelayMs: 1_000 } });
    h.open({ zone: 'b' });
    const t = h.submit({ preferredZone: 'a' });
    expect(h.dispatch()).toEqual([]);
    h.advance(300);
    const own = h.open({ zone: 'a' });
    expect(h.dispatch()).toMatchObject([{ taskId: t.id, sessionId: own.id }]);
  });

  it('a held task does not hold up the tasks behind it', () => {
    const h = new CoreHarness({ core: { zoneSpilloverDelayMs: 1_000 } });
    const other = h.open({ zone: 'b', slots: 2 });
    const held = h.submit({ preferredZone: 'a', priority: 5 });
    const free = h.submit({ preferredZone: '' });
    const forB = h.submit({ preferredZone: 'b' });
    const assigned = h.dispatch();
    expect(assigned.map((a) => a.taskId).sort()).toEqual([free.id, forB.id].sort());
    expect(assigned.every((a) => a.sessionId === other.id)).toBe(true);
    expect(held.state).toBe('PENDING');
  });

  it('changing the delay live re-judges held tasks: 0 releases them at once', () => {
    const h = new CoreHarness({ core: { zoneSpilloverDelayMs: 60_000 } });
    const other = h.open({ zone: 'b' });
    const t = h.submit({ preferredZone: 'a' });
    expect(h.dispatch()).toEqual([]);
    retune(h, { zoneSpilloverDelayMs: 0 });
    expect(h.dispatch()).toMatchObject([{ taskId: t.id, sessionId: other.id }]);
  });

  it('a longer delay set live keeps counting from when the task became ready', () => {
    const h = new CoreHarness({ core: { zoneSpilloverDelayMs: 1_000 } });
    const other = h.open({ zone: 'b' });
    const t = h.submit({ preferredZone: 'a' });
    h.dispatch();
    h.advance(500);
    retune(h, { zoneSpilloverDelayMs: 2_000 });
    expect(h.dispatch()).toEqual([]);
    // The old spill time (1 s) passes without effect; the new one (2 s) spills.
    h.advance(600);
    expect(h.takeAssignments()).toEqual([]);
    h.advance(899);
    expect(h.takeAssignments()).toEqual([]);
    h.advance(1);
    expect(h.takeAssignments()).toMatchObject([{ taskId: t.id, sessionId: other.id }]);
  });

  it('a cancelled held task is never assigned', () => {
    const h = new CoreHarness({ core: { zoneSpilloverDelayMs: 1_000 } });
    h.open({ zone: 'b' });
    const t = h.submit({ preferredZone: 'a' });
    h.dispatch();
    // It waits in the store, not in the engine: the cancel goes there.
    expect(h.engine.stats().tasksInMemory).toBe(0);
    expect(h.cancel(t.id)).toEqual({ state: 'CANCELLED', cancelled: true });
    h.advance(1_000);
    expect(h.takeAssignments()).toEqual([]);
    expect(t.state).toBe('CANCELLED');
  });
});

describe('retry defaults changed live', () => {
  it('the next retry waits the new backoff', () => {
    const h = new CoreHarness({ core: { backoff: { initialMs: 1_000, multiplier: 2, maxMs: 60_000, jitter: 0 } } });
    const w = h.open();
    const t = h.submit({ attemptTimeoutMs: 100 });
    h.dispatch();
    retune(h, { backoff: { initialMs: 7_000, jitter: 0 } });
    h.advance(100);
    expect(t.state).toBe('PENDING');
    expect(t.notBeforeMs).toBe(h.now + 7_000);
    expect(w.heldCount).toBe(1);
  });

  it('the next drain uses the new grace', () => {
    const h = new CoreHarness();
    const w = h.open();
    h.submit();
    h.dispatch();
    retune(h, { drainGraceMs: 1_234 });
    h.drain(w);
    expect(w.session.drainDeadlineMs).toBe(h.now + 1_234);
  });
});
