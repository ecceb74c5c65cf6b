import { describe, expect, it } from 'vitest';
import { byTask, createHarness, submitAndAssign, T0, type Assigned } from '../support/core-harness';

function countBySession(assigned: Assigned[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of assigned) out[a.sessionId] = (out[a.sessionId] ?? 0) + 1;
  return out;
}

describe('slots', () => {
  it('never assigns a session more tasks than its slots', () => {
    const h = createHarness();
    const w = h.open({ slots: 2 });
    const tasks = [h.submit(), h.submit(), h.submit(), h.submit(), h.submit()];
    const first = h.dispatch();
    expect(first.map((a) => a.taskId)).toEqual([tasks[0]!.id, tasks[1]!.id]);
    expect(w.heldCount).toBe(2);
    expect(h.dispatch()).toEqual([]);
    expect(tasks.slice(2).map((t) => t.state)).toEqual(['PENDING', 'PENDING', 'PENDING']);

    w.complete(first[0]!, 3);
    expect(h.dispatch().map((a) => a.taskId)).toEqual([tasks[2]!.id]);
    expect(w.heldCount).toBe(2);
    expect(h.dispatch()).toEqual([]);
  });

  it('a session with 0 slots gets nothing until it raises them', () => {
    const h = createHarness();
    const w = h.open({ slots: 0 });
    const t = h.submit();
    expect(h.dispatch()).toEqual([]);
    h.setSlots(w, 1);
    expect(h.dispatch()).toMatchObject([{ taskId: t.id, sessionId: w.id }]);
  });

  it('setSlots lowered below the held count stops new assignments until enough finish', () => {
    const h = createHarness();
    const w = h.open({ slots: 3 });
    for (let i = 0; i < 6; i++) h.submit();
    const held = h.dispatch();
    expect(held).toHaveLength(3);
    h.setSlots(w, 1);
    w.complete(held[0]!, 3);
    expect(h.dispatch()).toEqual([]);
    w.complete(held[1]!, 3);
    expect(h.dispatch()).toEqual([]);
    w.complete(held[2]!, 3);
    expect(h.dispatch()).toHaveLength(1);
    expect(w.heldCount).toBe(1);
  });

  it('raising slots offers the session the extra capacity at once', () => {
    const h = createHarness();
    const w = h.open({ slots: 1 });
    for (let i = 0; i < 5; i++) h.submit();
    expect(h.dispatch()).toHaveLength(1);
    h.setSlots(w, 4);
    expect(h.dispatch()).toHaveLength(3);
    expect(w.heldCount).toBe(4);
  });

  it('orphan holds (timed out, not yet confirmed) count against the slots', () => {
    const h = createHarness({ core: { backoff: { initialMs: 0, multiplier: 1, maxMs: 0, jitter: 0 } } });
    const w = h.open({ slots: 2 });
    const a1 = submitAndAssign(h, w, { attemptTimeoutMs: 1000 });
    h.advance(500);
    const a2 = submitAndAssign(h, w, { attemptTimeoutMs: 1000 });
    h.advance(500); // a1 times out and is immediately ready again
    expect(a1.task.state).toBe('PENDING');
    expect(w.heldCount).toBe(2);
    expect(h.dispatch()).toEqual([]);
    w.fail(a1, 3, null); // the worker reports the timed-out attempt over
    expect(w.heldCount).toBe(1);
    expect(h.dispatch()).toMatchObject([{ taskId: a1.taskId, attempt: 2, sessionId: w.id }]);
    expect(w.heldCount).toBe(2);
    expect(a2.task.state).toBe('ASSIGNED');
  });

  it('orphan holds of cancelled tasks count against the slots', () => {
    const h = createHarness();
    const w = h.open({ slots: 1 });
    const a = submitAndAssign(h, w);
    h.cancel(a.taskId);
    const next = h.submit();
    expect(h.dispatch()).toEqual([]);
    w.cancelled(a, 3);
    expect(h.dispatch()).toMatchObject([{ taskId: next.id }]);
  });

  it('a session serving two queues never exceeds its slots across both', () => {
    const h = createHarness();
    const w = h.open({ slots: 3, queues: ['a', 'b'] });
    for (let i = 0; i < 4; i++) {
      h.submit({ queue: 'a' });
      h.submit({ queue: 'b' });
    }
    expect(h.dispatch()).toHaveLength(3);
    expect(w.heldCount).toBe(3);
    expect(h.dispatch()).toEqual([]);
  });
});

describe('round-robin fairness', () => {
  it('spreads tasks evenly over 4 sessions, in turn', () => {
    const h = createHarness();
    const ws = [h.open({ slots: 10 }), h.open({ slots: 10 }), h.open({ slots: 10 }), h.open({ slots: 10 })];
    const tasks = Array.from({ length: 20 }, () => h.submit());
    const assigned = h.dispatch();
    expect(assigned).toHaveLength(20);
    expect(countBySession(assigned)).toEqual(Object.fromEntries(ws.map((w) => [w.id, 5])));
    // FIFO tasks are handed out in turn: task i goes to session i mod 4.
    expect(byTask(assigned)).toEqual(Object.fromEntries(tasks.map((t, i) => [t.id, ws[i % 4]!.id])));
  });

  it('keeps the turn across dispatch rounds', () => {
    const h = createHarness();
    const ws = [h.open({ slots: 10 }), h.open({ slots: 10 }), h.open({ slots: 10 }), h.open({ slots: 10 })];
    const order: string[] = [];
    for (let round = 0; round < 6; round++) {
      h.submit();
      order.push(...h.dispatch().map((a) => a.sessionId));
    }
    expect(order).toEqual([ws[0], ws[1], ws[2], ws[3], ws[0], ws[1]].map((w) => w!.id));
  });

  it('a session with fewer slots gets fewer tasks; the others share the rest evenly', () => {
    const h = createHarness();
    const small = h.open({ slots: 1 });
    const others = [h.open({ slots: 3 }), h.open({ slots: 3 }), h.open({ slots: 3 })];
    for (let i = 0; i < 7; i++) h.submit();
    const counts = countBySession(h.dispatch());
    expect(counts).toEqual({ [small.id]: 1, [others[0]!.id]: 2, [others[1]!.id]: 2, [others[2]!.id]: 2 });
  });

  it('stays fair over many completions: 4 busy workers each do a quarter of 400 tasks', () => {
    const h = createHarness();
    const ws = [h.open({ slots: 2 }), h.open({ slots: 2 }), h.open({ slots: 2 }), h.open({ slots: 2 })];
    for (let i = 0; i < 400; i++) h.submit();
    const done: Record<string, number> = {};
    let inFlight = h.dispatch();
    while (inFlight.length > 0) {
      for (const a of inFlight) {
        const w = ws.find((x) => x.id === a.sessionId)!;
        expect(w.complete(a, a.version + 1).result).toBe('ACCEPTED');
        done[w.id] = (done[w.id] ?? 0) + 1;
        expect(w.heldCount).toBeLessThanOrEqual(2);
      }
      inFlight = h.dispatch();
    }
    expect(done).toEqual(Object.fromEntries(ws.map((w) => [w.id, 100])));
  });

  it('sessions that free a slot rejoin the turn in the order they freed it', () => {
    const h = createHarness();
    const w1 = h.open({ slots: 1 });
    const w2 = h.open({ slots: 1 });
    const w3 = h.open({ slots: 1 });
    const ts = [h.submit(), h.submit(), h.submit()];
    const first = h.dispatch();
    expect(byTask(first)).toEqual({ [ts[0]!.id]: w1.id, [ts[1]!.id]: w2.id, [ts[2]!.id]: w3.id });
    // w3 frees its slot before w1: the turn follows the order the slots were freed in.
    w3.complete(first.find((a) => a.sessionId === w3.id)!, 3);
    w1.complete(first.find((a) => a.sessionId === w1.id)!, 3);
    const t4 = h.submit();
    const t5 = h.submit();
    expect(byTask(h.dispatch())).toEqual({ [t4.id]: w3.id, [t5.id]: w1.id });
    expect(w2.heldCount).toBe(1);
  });

  it('a drained or closed session leaves the turn', () => {
    const h = createHarness();
    const w1 = h.open({ slots: 5 });
    const w2 = h.open({ slots: 5 });
    const w3 = h.open({ slots: 5 });
    h.drain(w1);
    h.close(w2);
    for (let i = 0; i < 3; i++) h.submit();
    expect(countBySession(h.dispatch())).toEqual({ [w3.id]: 3 });
  });
});

describe('priority and order', () => {
  it('dispatches higher priority first and FIFO within a priority', () => {
    const h = createHarness();
    const p0a = h.submit({ priority: 0 });
    const p5a = h.submit({ priority: 5 });
    const pm1 = h.submit({ priority: -1 });
    const p5b = h.submit({ priority: 5 });
    const p0b = h.submit({ priority: 0 });
    const p1000 = h.submit({ priority: 1000 });
    const pm1000 = h.submit({ priority: -1000 });
    h.open({ slots: 100 });
    expect(h.dispatch().map((a) => a.taskId)).toEqual([p1000, p5a, p5b, p0a, p0b, pm1, pm1000].map((t) => t.id));
  });

  it('keeps FIFO for many tasks of one priority, one at a time', () => {
    const h = createHarness();
    const tasks = Array.from({ length: 50 }, () => h.submit());
    const w = h.open({ slots: 1 });
    const order: string[] = [];
    for (let i = 0; i < 50; i++) {
      const [a] = h.dispatch();
      order.push(a!.taskId);
      w.complete(a!, 3);
    }
    expect(order).toEqual(tasks.map((t) => t.id));
  });

  it('a late high-priority task overtakes queued lower ones', () => {
    const h = createHarness();
    const w = h.open({ slots: 1 });
    const low1 = h.submit();
    const low2 = h.submit();
    const [a] = h.dispatch();
    expect(a!.taskId).toBe(low1.id);
    const high = h.submit({ priority: 10 });
    w.complete(a!, 3);
    expect(h.dispatch().map((x) => x.taskId)).toEqual([high.id]);
    expect(low2.state).toBe('PENDING');
  });

  it('a retried task goes behind tasks of its priority that were queued before the retry', () => {
    const h = createHarness();
    const w = h.open({ slots: 1 });
    const first = h.submit();
    const second = h.submit();
    const [a] = h.dispatch();
    h.close(w);
    const w2 = h.open({ slots: 1 });
    const [b] = h.dispatch();
    expect(b!.taskId).toBe(second.id);
    w2.complete(b!, 3);
    expect(h.dispatch()).toMatchObject([{ taskId: first.id, attempt: 2 }]);
    expect(a!.taskId).toBe(first.id);
  });

  it('skips cancelled pending tasks', () => {
    const h = createHarness();
    const t1 = h.submit();
    const t2 = h.submit();
    const t3 = h.submit();
    expect(h.cancel(t2.id)).toEqual({ state: 'CANCELLED', cancelled: true });
    h.open({ slots: 5 });
    expect(h.dispatch().map((a) => a.taskId)).toEqual([t1.id, t3.id]);
  });

  it('delayed tasks join in priority order when their time comes', () => {
    const h = createHarness();
    const w = h.open({ slots: 10 });
    const later = h.submit({ notBeforeMs: T0 + 100, priority: 1 });
    const now = h.submit({ priority: 0 });
    expect(h.dispatch().map((a) => a.taskId)).toEqual([now.id]);
    h.setSlots(w, 10);
    h.advance(100);
    expect(h.dispatch().map((a) => a.taskId)).toEqual([later.id]);
  });
});

describe('preferred zone', () => {
  it('goes to a session in the preferred zone when one has a free slot, even out of turn', () => {
    const h = createHarness();
    const a = h.open({ zone: 'zone-a', slots: 5 });
    const b = h.open({ zone: 'zone-b', slots: 1 });
    const t = h.submit({ preferredZone: 'zone-b' });
    expect(h.dispatch()).toMatchObject([{ taskId: t.id, sessionId: b.id }]);
    expect(a.heldCount).toBe(0);
  });

  it('falls back to any session when the preferred zone is full or absent', () => {
    const h = createHarness();
    const a = h.open({ zone: 'zone-a', slots: 5 });
    const b = h.open({ zone: 'zone-b', slots: 1 });
    const t1 = h.submit({ preferredZone: 'zone-b' });
    const t2 = h.submit({ preferredZone: 'zone-b' });
    const t3 = h.submit({ preferredZone: 'zone-c' });
    expect(byTask(h.dispatch())).toEqual({ [t1.id]: b.id, [t2.id]: a.id, [t3.id]: a.id });
  });

  it('round-robins within the preferred zone', () => {
    const h = createHarness();
    h.open({ zone: 'zone-a', slots: 5 });
    const b1 = h.open({ zone: 'zone-b', slots: 5 });
    const b2 = h.open({ zone: 'zone-b', slots: 5 });
    const ts = Array.from({ length: 4 }, () => h.submit({ preferredZone: 'zone-b' }));
    expect(byTask(h.dispatch())).toEqual({ [ts[0]!.id]: b1.id, [ts[1]!.id]: b2.id, [ts[2]!.id]: b1.id, [ts[3]!.id]: b2.id });
  });

  it('tasks without a preference round-robin over every zone when assigned at submit', () => {
    const h = createHarness();
    const a = h.open({ zone: 'zone-a', slots: 5 });
    const b = h.open({ zone: 'zone-b', slots: 5 });
    h.dispatch(); // nothing waits in the store: new tasks are assigned as they come
    const ts = Array.from({ length: 4 }, () => h.submit());
    expect(byTask(h.dispatch())).toEqual({ [ts[0]!.id]: a.id, [ts[1]!.id]: b.id, [ts[2]!.id]: a.id, [ts[3]!.id]: b.id });
  });

  it('tasks without a preference claimed from the store fill one zone\'s sessions, then the next zone\'s', () => {
    const h = createHarness();
    const ts = Array.from({ length: 8 }, () => h.submit());
    h.dispatch();
    const a = h.open({ zone: 'zone-a', slots: 5 });
    const b = h.open({ zone: 'zone-b', slots: 5 });
    const assigned = byTask(h.dispatch());
    expect(Object.keys(assigned).sort()).toEqual(ts.map((t) => t.id).sort());
    const perSession = [a.id, b.id].map((id) => Object.values(assigned).filter((s) => s === id).length);
    expect(perSession.sort()).toEqual([3, 5]);
  });
});

describe('queues', () => {
  it('a session only gets tasks of the queues it serves', () => {
    const h = createHarness();
    const wa = h.open({ queues: ['a'], slots: 5 });
    const wb = h.open({ queues: ['b'], slots: 5 });
    const ta = h.submit({ queue: 'a' });
    const tb = h.submit({ queue: 'b' });
    const tc = h.submit({ queue: 'c' });
    expect(h.dispatch().map((x) => [x.taskId, x.sessionId]).sort()).toEqual(
      [
        [ta.id, wa.id],
        [tb.id, wb.id],
      ].sort(),
    );
    expect(tc.state).toBe('PENDING');
    const wc = h.open({ queues: ['c'] });
    expect(h.dispatch()).toMatchObject([{ taskId: tc.id, sessionId: wc.id }]);
  });

  it('priority is per queue: a high-priority task in another queue does not block', () => {
    const h = createHarness();
    h.open({ queues: ['a'], slots: 1 });
    h.submit({ queue: 'b', priority: 1000 });
    const ta = h.submit({ queue: 'a', priority: -5 });
    expect(h.dispatch().map((x) => x.taskId)).toEqual([ta.id]);
  });
});

describe('assignment content', () => {
  it('carries the attempt, the new version and the deadline, and marks the task dirty', () => {
    const h = createHarness();
    const w = h.open();
    h.advance(3);
    const t = h.submit({ attemptTimeoutMs: 7000 });
    const [a] = h.dispatch();
    expect(a).toMatchObject({ sessionId: w.id, taskId: t.id, attempt: 1, version: 2, deadlineMs: T0 + 3 + 7000 });
    expect(a!.task.id).toBe(t.id);
    expect([t.state, t.sessionId, t.workerId, t.workerZone, t.owner, t.updatedMs, t.progressPermille]).toEqual(['ASSIGNED', w.id, 'worker-1', '', h.owner, T0 + 3, 0]);
    // Assigned and written as one: the insert carries the assignment.
    expect(h.batches.at(-1)!.inserts.map((r) => [r.id, r.state])).toEqual([[t.id, 'ASSIGNED']]);
    expect(h.dirtyIds()).toEqual([t.id]);
    expect(h.dirtyIds()).toEqual([]);
  });

  it('dispatch with nothing to do changes nothing', () => {
    const h = createHarness();
    h.open();
    h.dispatch();
    expect(h.dispatch()).toEqual([]);
    expect(h.dirtyIds()).toEqual([]);
  });
});
