/**
 * Property-style test: a seeded random sequence of operations (submits,
 * dispatch, worker updates including resends, stale versions and wrong
 * attempts, stream ends, drains, cancels, clock jumps) with the invariants
 * checked after every step, then a phase where healthy workers complete
 * everything, after which every task must have ended exactly once. Every
 * step ends with a group commit to the harness's in-memory store, as the
 * adapter's would; the engine and the store must then agree on every task
 * the engine holds, and the engine must hold nothing else.
 */
import { describe, expect, it } from 'vitest';
import type { Random } from '../../src/core/clock';
import { holdKey } from '../../src/core/session';
import type { TaskRecord } from '../../src/core/task-fields';
import { canTransition, isTerminal, type TaskState } from '../../src/core/task-state';
import type { UpdateAckOut, WorkerUpdate } from '../../src/core/update';
import { errorInfo } from '../../src/errors';
import { createHarness, makeUpdate, seededRandom, type CoreHarness, type UpdateFields, type WorkerStream } from '../support/core-harness';

interface Item {
  taskId: string;
  attempt: number;
  /** Set when the dispatcher sent Cancel for this attempt: the reason it gave. */
  cancelled: string;
}

interface SimWorker {
  stream: WorkerStream;
  closed: boolean;
  /** What the worker believes it holds, keyed like the engine's holds. */
  known: Map<string, Item>;
  /** Updates whose sequence id the stream consumed, with their answers. */
  history: { update: WorkerUpdate; ack: UpdateAckOut }[];
}

interface Seen {
  state: TaskState;
  version: number;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new Error(`invariant broken: ${message}`);
}

/** Field by field, bytes by content (the store copies them out). */
function sameRecord(a: TaskRecord, b: TaskRecord): boolean {
  const plain = (r: TaskRecord): string => JSON.stringify({ ...r, payload: [...r.payload], result: r.result && [...r.result] });
  return plain(a) === plain(b);
}

const QUEUES = ['a', 'b'];
const ZONES = ['z1', 'z2'];
const REJECTED_LATE = ['FENCED', 'NOT_HELD', 'TERMINAL'];

class Sim {
  readonly h: CoreHarness;
  readonly rnd: Random;
  readonly tasks: TaskRecord[] = [];
  readonly byId = new Map<string, TaskRecord>();
  readonly workers: SimWorker[] = [];
  readonly seen = new Map<string, Seen>();
  readonly terminal = new Map<string, TaskRecord>();
  readonly acceptedVersions = new Set<string>();
  readonly log: string[] = [];
  transitions = 0;

  constructor(seed: number) {
    this.rnd = seededRandom(seed);
    this.h = createHarness({
      random: seededRandom(seed * 7919 + 1),
      core: { backoff: { initialMs: 200, multiplier: 2, maxMs: 5000, jitter: 0.5 }, sequenceWindow: 64 },
    });
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.rnd() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.rnd() < p;
  }

  pick<T>(list: readonly T[]): T | undefined {
    return list.length === 0 ? undefined : list[Math.floor(this.rnd() * list.length)];
  }

  get open(): SimWorker[] {
    return this.workers.filter((w) => !w.closed);
  }

  worker(sessionId: string): SimWorker {
    const w = this.workers.find((x) => x.stream.id === sessionId);
    if (w === undefined) throw new Error(`unknown session ${sessionId}`);
    return w;
  }

  isLive(w: SimWorker, item: Item): boolean {
    const t = this.byId.get(item.taskId)!;
    return (t.state === 'ASSIGNED' || t.state === 'RUNNING') && t.sessionId === w.stream.id && t.attempt === item.attempt;
  }

  send(w: SimWorker, fields: UpdateFields, sequenceId = w.stream.nextSequenceId): UpdateAckOut {
    const before = w.stream.nextSequenceId;
    const update = makeUpdate(fields, sequenceId);
    const ack = w.stream.sendRaw(update);
    if (w.stream.nextSequenceId === before + 1) w.history.push({ update, ack });
    else expect(w.stream.nextSequenceId).toBe(before);
    if (ack.result === 'ACCEPTED' && fields.status !== 'CANCELLED') {
      const key = `${fields.taskId}@${fields.version}`;
      expect(this.acceptedVersions.has(key), `update ${key} accepted twice`).toBe(false);
      this.acceptedVersions.add(key);
    }
    return ack;
  }

  snapshot(): string {
    return this.tasks.map((t) => `${t.id}:${t.state}:${t.version}:${t.attempt}`).join('|');
  }

  /** Runs `fn`, which must leave every task exactly as it was. */
  unchanged(fn: () => void): void {
    const before = this.snapshot();
    fn();
    expect(this.snapshot()).toBe(before);
  }

  // ------------------------------------------------------------ operations

  submit(): void {
    const now = this.h.now;
    const t = this.h.submit({
      queue: this.pick(QUEUES)!,
      priority: this.pick([-1, 0, 0, 1, 5])!,
      preferredZone: this.pick(['', '', 'z1', 'z2'])!,
      maxAttempts: this.int(1, 4),
      attemptTimeoutMs: this.int(500, 4000),
      scheduleToStartTimeoutMs: this.chance(0.3) ? this.int(3000, 30_000) : 0,
      notBeforeMs: this.chance(0.2) ? now + this.int(1, 3000) : 0,
    });
    this.tasks.push(t);
    this.byId.set(t.id, t);
    // New: waiting (in the store, once committed), or assigned at once to a session with a free slot.
    this.seen.set(t.id, { state: 'PENDING', version: 1 });
    expect([[t.state, t.attempt, t.version]]).toContainEqual(t.state === 'PENDING' ? ['PENDING', 1, 1] : ['ASSIGNED', 1, 2]);
  }

  openWorker(slots = this.int(1, 3), queues?: string[]): SimWorker {
    const qs = queues ?? (this.chance(0.5) ? [...QUEUES] : [this.pick(QUEUES)!]);
    const stream = this.h.open({ slots, queues: qs, zone: this.pick(ZONES)! });
    const w: SimWorker = { stream, closed: false, known: new Map(), history: [] };
    this.workers.push(w);
    return w;
  }

  dispatch(): void {
    for (const a of this.h.dispatch()) {
      const w = this.worker(a.sessionId);
      expect(w.closed).toBe(false);
      expect(w.stream.session.lifecycle).toBe('OPEN');
      const key = holdKey(a.taskId, a.attempt);
      expect(w.known.has(key)).toBe(false);
      w.known.set(key, { taskId: a.taskId, attempt: a.attempt, cancelled: '' });
      expect(a.deadlineMs).toBe(a.task.attemptDeadlineMs);
      expect(a.deadlineMs).toBeLessThanOrEqual(this.h.now + a.task.attemptTimeoutMs);
      expect(a.version).toBe(a.task.version);
    }
  }

  liveItem(): { w: SimWorker; item: Item } | undefined {
    const choices: { w: SimWorker; item: Item }[] = [];
    for (const w of this.open) for (const item of w.known.values()) if (item.cancelled === '') choices.push({ w, item });
    return this.pick(choices);
  }

  progress(): void {
    const c = this.liveItem();
    if (c === undefined) return;
    const t = this.byId.get(c.item.taskId)!;
    const version = t.version + this.int(1, 3);
    const ack = this.send(c.w, { taskId: t.id, attempt: c.item.attempt, status: 'RUNNING', version, progressPermille: this.int(0, 1000) });
    expect(ack).toMatchObject({ result: 'ACCEPTED', state: 'RUNNING', version });
  }

  complete(): void {
    const c = this.liveItem();
    if (c === undefined) return;
    const t = this.byId.get(c.item.taskId)!;
    const version = t.version + 1;
    const ack = this.send(c.w, { taskId: t.id, attempt: c.item.attempt, status: 'COMPLETED', version, progressPermille: 1000, result: new Uint8Array([this.int(0, 255)]) });
    expect(ack).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version });
    c.w.known.delete(holdKey(t.id, c.item.attempt));
  }

  fail(): void {
    const c = this.liveItem();
    if (c === undefined) return;
    const t = this.byId.get(c.item.taskId)!;
    const retryable = this.chance(0.6);
    const attempt = t.attempt;
    const version = t.version + 1;
    const ack = this.send(c.w, { taskId: t.id, attempt, status: 'FAILED', version, error: { ...errorInfo('HANDLER_FAILED', 'boom'), retryable } });
    expect(ack.result).toBe('ACCEPTED');
    if (retryable && attempt < t.maxAttempts) {
      expect(ack).toMatchObject({ state: 'PENDING', version: version + 1 });
      expect(t.attempt).toBe(attempt + 1);
    } else {
      expect(ack).toMatchObject({ state: 'FAILED', version: retryable ? version + 1 : version });
    }
    c.w.known.delete(holdKey(t.id, attempt));
  }

  stale(): void {
    const c = this.liveItem();
    if (c === undefined) return;
    const t = this.byId.get(c.item.taskId)!;
    const version = Math.max(1, t.version - this.int(0, 2));
    this.unchanged(() => {
      const ack = this.send(c.w, { taskId: t.id, attempt: c.item.attempt, status: this.pick(['RUNNING', 'COMPLETED'])!, version, progressPermille: (t.progressPermille + 1) % 1001 });
      expect(ack).toMatchObject({ result: 'REJECTED', reason: 'STALE_VERSION', state: t.state, version: t.version });
    });
  }

  wrongAttempt(): void {
    const w = this.pick(this.open);
    const item = w && this.pick([...w.known.values()]);
    if (w === undefined || item === undefined) return;
    const t = this.byId.get(item.taskId)!;
    const attempt = this.chance(0.5) || item.attempt === 1 ? item.attempt + 1 : item.attempt - 1;
    const other = w.stream.session.holds.get(holdKey(t.id, attempt));
    if (other !== undefined && !other.orphan) return; // it really holds that attempt too
    this.unchanged(() => {
      const ack = this.send(w, { taskId: t.id, attempt, status: 'RUNNING', version: t.version + 1 });
      expect(ack.result).toBe('REJECTED');
      expect(REJECTED_LATE).toContain(ack.reason);
    });
  }

  resendSameSequence(): void {
    const w = this.pick(this.open);
    const entry = w && this.pick(w.history.slice(-50));
    if (w === undefined || entry === undefined) return;
    this.unchanged(() => {
      const before = w.stream.nextSequenceId;
      const ack = w.stream.sendRaw({ ...entry.update });
      const expected = entry.ack.result === 'ACCEPTED' ? { ...entry.ack, result: 'DUPLICATE' } : entry.ack;
      // An answer completed from the store (the task had left memory) says what the store holds now.
      if (REJECTED_LATE.includes(entry.ack.reason)) expect([ack.result, ack.sequenceId]).toEqual([expected.result, expected.sequenceId]);
      else expect(ack).toEqual(expected);
      expect(w.stream.nextSequenceId).toBe(before);
    });
  }

  resendNewSequence(): void {
    const w = this.pick(this.open);
    const entry = w && this.pick(w.history.filter((e) => e.ack.result === 'ACCEPTED').slice(-20));
    if (w === undefined || entry === undefined) return;
    const { sequenceId: _old, ...fields } = entry.update;
    const holdsBefore = w.stream.session.holds.size;
    this.unchanged(() => {
      const ack = this.send(w, fields);
      expect(ack.result).not.toBe('ACCEPTED');
    });
    expect(w.stream.session.holds.size).toBe(holdsBefore);
  }

  reportOver(): void {
    const choices: { w: SimWorker; item: Item }[] = [];
    for (const w of this.open) for (const item of w.known.values()) if (item.cancelled !== '') choices.push({ w, item });
    const c = this.pick(choices);
    if (c === undefined) return;
    const key = holdKey(c.item.taskId, c.item.attempt);
    expect(c.w.stream.session.holds.get(key)?.orphan).toBe(true);
    const t = this.byId.get(c.item.taskId)!;
    const status = c.item.cancelled === 'CANCELLED' ? 'CANCELLED' : this.pick(['FAILED', 'COMPLETED', 'CANCELLED'])!;
    this.unchanged(() => {
      const ack = this.send(c.w, { taskId: t.id, attempt: c.item.attempt, status, version: t.version + 1 });
      // A confirmed Cancel is accepted; a CANCELLED report after a timeout, for a task cancelled later
      // (in the store, while it waited), gets TERMINAL instead: the worker did not cancel it.
      if (status === 'CANCELLED' && c.item.cancelled === 'CANCELLED') expect(ack).toMatchObject({ result: 'ACCEPTED', state: 'CANCELLED' });
      else if (status === 'CANCELLED' && t.state === 'CANCELLED') expect([['ACCEPTED', ''], ['REJECTED', 'TERMINAL']]).toContainEqual([ack.result, ack.reason]);
      else {
        expect(ack.result).toBe('REJECTED');
        expect(['FENCED', 'TERMINAL']).toContain(ack.reason);
      }
    });
    expect(c.w.stream.session.holds.has(key)).toBe(false);
    c.w.known.delete(key);
  }

  zombie(): void {
    const w = this.pick(this.workers.filter((x) => x.closed));
    const t = this.pick(this.tasks);
    if (w === undefined || t === undefined) return;
    this.unchanged(() => {
      const ack = this.send(w, { taskId: t.id, attempt: t.attempt, status: this.pick(['RUNNING', 'COMPLETED', 'FAILED'])!, version: t.version + 1 });
      expect(ack.result).toBe('REJECTED');
      expect(REJECTED_LATE).toContain(ack.reason);
    });
  }

  closeWorker(): void {
    const w = this.pick(this.open);
    if (w !== undefined) this.h.close(w.stream, 'STREAM_ENDED');
  }

  drainWorker(): void {
    const w = this.pick(this.open.filter((x) => x.stream.session.lifecycle === 'OPEN'));
    if (w !== undefined) this.h.drain(w.stream, this.int(0, 3000));
  }

  raiseSlots(): void {
    const w = this.pick(this.open);
    if (w !== undefined) this.h.setSlots(w.stream, w.stream.session.slots + 1);
  }

  cancel(): void {
    const t = this.pick(this.tasks);
    if (t === undefined) return;
    const wasTerminal = isTerminal(t.state);
    const state = t.state;
    // The engine cancels what it holds; the store what waits there.
    const out = this.h.cancel(t.id, 'property');
    expect(out).toEqual(wasTerminal ? { state, cancelled: false } : { state: 'CANCELLED', cancelled: true });
  }

  advance(): void {
    const ms = this.chance(0.1) ? this.int(20_000, 50_000) : this.int(0, 1500);
    this.h.advance(ms);
    const next = this.h.engine.nextWakeAtMs();
    if (next !== undefined) expect(next).toBeGreaterThan(this.h.now);
  }

  touchSome(): void {
    for (const w of this.open) if (this.chance(0.7)) w.stream.touch();
  }

  // ------------------------------------------------------------ bookkeeping

  /** Applies the effects of the last operation to the workers' view. */
  absorbEffects(): void {
    // Every commit claims for free slots, so assignments may follow any step.
    this.dispatch();
    for (const c of this.h.takeCancels()) {
      const w = this.worker(c.sessionId);
      const item = w.known.get(holdKey(c.taskId, c.attempt));
      expect(item, `cancel for ${c.taskId}#${c.attempt} the worker does not hold`).toBeDefined();
      expect(item!.cancelled).toBe('');
      item!.cancelled = c.reason;
      expect(['CANCELLED', 'ATTEMPT_TIMEOUT']).toContain(c.reason);
    }
    for (const c of this.h.takeClosed()) {
      const w = this.worker(c.sessionId);
      expect(w.closed).toBe(false);
      expect(w.stream.session.lifecycle).toBe('CLOSED');
      w.closed = true;
      w.known.clear();
    }
  }

  checkInvariants(): void {
    const dirty = new Set(this.h.dirtyIds());
    this.absorbEffects();

    // taskId -> ids of open sessions holding a live (non-orphan) hold on it
    const liveHolders = new Map<string, string[]>();
    for (const w of this.workers) {
      const s = w.stream.session;
      if (w.closed) {
        check(s.lifecycle === 'CLOSED' && s.holds.size === 0, `closed session ${s.id} is ${s.lifecycle} with ${s.holds.size} holds`);
        continue;
      }
      check(s.lifecycle !== 'CLOSED', `session ${s.id} closed without a close effect`);
      // No session holds more than its slots (orphans included).
      check(s.holds.size <= s.slots, `session ${s.id} holds ${s.holds.size} > ${s.slots} slots`);
      // The worker's view and the engine's holds agree.
      check(s.holds.size === w.known.size, `session ${s.id}: engine holds ${[...s.holds.keys()]} but worker knows ${[...w.known.keys()]}`);
      for (const [key, hold] of s.holds) {
        const item = w.known.get(key);
        check(item !== undefined, `session ${s.id} holds ${key} the worker does not know`);
        check(hold.orphan === (item!.cancelled !== ''), `hold ${key} orphan=${hold.orphan} but the worker was ${item!.cancelled ? '' : 'not '}told to cancel`);
        const t = this.byId.get(hold.taskId)!;
        const current = (t.state === 'ASSIGNED' || t.state === 'RUNNING') && t.sessionId === s.id && t.attempt === hold.attempt;
        // A live hold is the task's current attempt in this session; an orphan never is.
        check(current === !hold.orphan, `hold ${key} in ${s.id} (orphan=${hold.orphan}) vs task ${t.state} in '${t.sessionId}' attempt ${t.attempt}`);
        if (!hold.orphan) liveHolders.set(t.id, [...(liveHolders.get(t.id) ?? []), s.id]);
      }
    }

    // After the commit, the engine holds exactly the tasks its sessions run, as the store has them.
    check(this.h.engine.stats().tasksInMemory === liveHolders.size, `engine holds ${this.h.engine.stats().tasksInMemory} tasks, sessions run ${liveHolders.size}`);
    for (const id of liveHolders.keys()) {
      const mine = this.h.engine.getTask(id)!;
      const stored = this.h.store.get(id)!;
      check(mine !== undefined && stored !== undefined && sameRecord(mine, stored), `task ${id}: engine ${JSON.stringify(mine && { s: mine.state, v: mine.version })} vs store ${JSON.stringify(stored && { s: stored.state, v: stored.version })}`);
      check(stored.owner === this.h.owner, `held task ${id} is owned by '${stored.owner}' in the store`);
    }

    for (const t of this.tasks) {
      const holders = liveHolders.get(t.id) ?? [];
      if (t.state === 'ASSIGNED' || t.state === 'RUNNING') {
        // Held by exactly one open session, at its current attempt.
        check(holders.length === 1 && holders[0] === t.sessionId, `${t.state} task ${t.id} in '${t.sessionId}' is held by [${holders}]`);
        check(t.attemptDeadlineMs > 0, `${t.state} task ${t.id} has no deadline`);
      } else {
        check(holders.length === 0 && t.sessionId === '' && t.attemptDeadlineMs === 0, `${t.state} task ${t.id} still held by [${holders}] '${t.sessionId}'`);
      }
      check(t.attempt >= 1 && t.attempt <= t.maxAttempts, `task ${t.id} attempt ${t.attempt} of ${t.maxAttempts}`);
      check(Number.isFinite(t.notBeforeMs), `task ${t.id} notBeforeMs ${t.notBeforeMs}`);

      const prev = this.seen.get(t.id)!;
      // Versions never go down; any change bumps the version and is marked dirty.
      check(t.version >= prev.version, `task ${t.id} version went down ${prev.version} -> ${t.version}`);
      if (t.version !== prev.version || t.state !== prev.state) {
        check(t.version > prev.version, `task ${t.id} changed ${prev.state} -> ${t.state} without a version bump`);
        check(dirty.has(t.id), `task ${t.id} changed but is not dirty`);
        // Within one step a task may be retried and claimed again (held -> PENDING -> ASSIGNED).
        const viaRetry = t.state === 'ASSIGNED' && canTransition(prev.state, 'PENDING');
        check(canTransition(prev.state, t.state) || viaRetry, `task ${t.id}: illegal ${prev.state} -> ${t.state}`);
        this.transitions += 1;
      }
      // A terminal task never changes again.
      const frozen = this.terminal.get(t.id);
      // Every change bumps the version, so these three say whether it changed (the whole record is compared at the end).
      if (frozen !== undefined) check(t.version === frozen.version && t.state === frozen.state && t.updatedMs === frozen.updatedMs, `terminal task ${t.id} changed: ${JSON.stringify(frozen)} -> ${JSON.stringify(t)}`);
      else if (isTerminal(t.state)) this.terminal.set(t.id, { ...t });
      this.seen.set(t.id, { state: t.state, version: t.version });
    }
  }

  step(): void {
    const r = this.rnd();
    let op: string;
    if (r < 0.14) op = 'submit';
    else if (r < 0.19) op = this.open.length < 4 ? 'open' : 'dispatch';
    else if (r < 0.31) op = 'dispatch';
    else if (r < 0.39) op = 'progress';
    else if (r < 0.47) op = 'complete';
    else if (r < 0.51) op = 'fail';
    else if (r < 0.55) op = 'stale';
    else if (r < 0.59) op = 'wrongAttempt';
    else if (r < 0.63) op = 'resendSameSequence';
    else if (r < 0.67) op = 'resendNewSequence';
    else if (r < 0.71) op = 'reportOver';
    else if (r < 0.73) op = 'zombie';
    else if (r < 0.755) op = 'closeWorker';
    else if (r < 0.77) op = 'drainWorker';
    else if (r < 0.78) op = 'raiseSlots';
    else if (r < 0.81) op = 'cancel';
    else if (r < 0.9) op = 'touchSome';
    else op = 'advance';
    this.log.push(op);
    switch (op) {
      case 'submit': this.submit(); break;
      case 'open': this.openWorker(); break;
      case 'dispatch': this.dispatch(); break;
      case 'progress': this.progress(); break;
      case 'complete': this.complete(); break;
      case 'fail': this.fail(); break;
      case 'stale': this.stale(); break;
      case 'wrongAttempt': this.wrongAttempt(); break;
      case 'resendSameSequence': this.resendSameSequence(); break;
      case 'resendNewSequence': this.resendNewSequence(); break;
      case 'reportOver': this.reportOver(); break;
      case 'zombie': this.zombie(); break;
      case 'closeWorker': this.closeWorker(); break;
      case 'drainWorker': this.drainWorker(); break;
      case 'raiseSlots': this.raiseSlots(); break;
      case 'cancel': this.cancel(); break;
      case 'touchSome': this.touchSome(); break;
      case 'advance': this.advance(); break;
    }
    this.absorbEffects();
    this.checkInvariants();
  }

  /** Healthy workers take over and complete everything; returns how many rounds it took. */
  settle(): number {
    for (const w of this.open) this.h.close(w.stream, 'SHUTDOWN');
    this.absorbEffects();
    this.checkInvariants();
    const healthy = [this.openWorker(20, [...QUEUES]), this.openWorker(20, [...QUEUES])];
    for (let round = 1; round <= 500; round++) {
      for (const w of healthy) w.stream.touch();
      this.absorbEffects();
      this.checkInvariants();
      for (const w of healthy) {
        for (const item of [...w.known.values()]) {
          const t = this.byId.get(item.taskId)!;
          expect(this.send(w, { taskId: t.id, attempt: item.attempt, status: 'RUNNING', version: t.version + 1 }).result).toBe('ACCEPTED');
          this.checkInvariants();
          expect(this.send(w, { taskId: t.id, attempt: item.attempt, status: 'COMPLETED', version: t.version + 1 })).toMatchObject({
            result: 'ACCEPTED',
            state: 'COMPLETED',
          });
          w.known.delete(holdKey(t.id, item.attempt));
          this.absorbEffects();
          this.checkInvariants();
        }
      }
      if (this.tasks.every((t) => isTerminal(t.state))) return round;
      this.h.advance(1000);
      this.absorbEffects();
      this.checkInvariants();
    }
    return -1;
  }
}

describe('engine invariants under random operations', () => {
  const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
  /** What the seeds' runs saw, for the coverage check after them. */
  const endings = new Set<string>();
  const reasons = new Set<string>();

  it.each(SEEDS)('seed %i', (seed) => {
    const sim = new Sim(seed);
    sim.openWorker();
    sim.openWorker();
    for (let i = 0; i < 400; i++) {
      try {
        sim.step();
      } catch (err) {
        throw new Error(`seed ${seed}, step ${i} (${sim.log.slice(-8).join(', ')}): ${(err as Error).message}`, { cause: err });
      }
    }
    for (const w of sim.workers) for (const e of w.history) if (e.ack.result === 'REJECTED') reasons.add(e.ack.reason);
    const rounds = sim.settle();
    for (const t of sim.tasks) endings.add(`${t.state}:${t.error?.reason ?? ''}`);
    expect(rounds, `seed ${seed}: tasks still unfinished: ${sim.tasks.filter((t) => !isTerminal(t.state)).map((t) => `${t.id}:${t.state}`).join(' ')}`).toBeGreaterThan(0);

    // Every task ended exactly once, and stayed that way.
    expect(sim.terminal.size).toBe(sim.tasks.length);
    for (const t of sim.tasks) expect({ ...t }).toEqual(sim.terminal.get(t.id));
    for (let i = 0; i < 5; i++) {
      sim.h.advance(60_000);
      sim.absorbEffects();
      sim.checkInvariants();
    }
    // The run exercised the engine, not just empty paths.
    expect(sim.tasks.length).toBeGreaterThan(20);
    expect(sim.transitions).toBeGreaterThan(sim.tasks.length * 2);
  });

  it('covers every kind of ending and every rejection over all seeds', () => {
    for (const e of ['COMPLETED:', 'FAILED:HANDLER_FAILED', 'FAILED:ATTEMPT_TIMEOUT', 'FAILED:LEASE_LOST', 'FAILED:SCHEDULE_TO_START_TIMEOUT', 'CANCELLED:CANCELLED']) {
      expect(endings).toContain(e);
    }
    for (const r of ['STALE_VERSION', 'FENCED', 'NOT_HELD', 'TERMINAL']) expect(reasons).toContain(r);
  });
});
