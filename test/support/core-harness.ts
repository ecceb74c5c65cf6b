/**
 * A small driver for the pure dispatch core, in the adapter's place: a
 * ManualClock, a deterministic random and id generator, an in-memory store
 * (MemoryStoreCore) that every group commit goes to, and a worker stand-in
 * that numbers its updates. It only calls the Engine's public API. As the
 * adapter does, it delivers effects only after a commit: assignments the
 * commit dropped are not delivered. `submit` and `task` give live views of
 * a task, wherever it is (the engine's memory or the store).
 */
import { ManualClock, type Random } from '../../src/core/clock';
import type { CommitBatch } from '../../src/core/commit-batch';
import { Engine, withoutTasks, type AssignmentOut, type CancelOut, type Effects } from '../../src/core/engine';
import { compileCoreOptions, type CoreOptions, type CoreOptionsInput } from '../../src/core/options';
import type { KeepalivePolicyOptions } from '../../src/core/keepalive-policy';
import { MemoryStoreCore } from './memory-task-store';

/** The seed's fixed timing (15 s heartbeats, 45 s liveness), so lease tests read in round numbers. */
export const SEED_KEEPALIVE: Partial<KeepalivePolicyOptions> = { minIntervalMs: 15_000, maxIntervalMs: 15_000, baseIdleMs: 45_000 };
import type { CloseCause, HelloSpec, SessionState } from '../../src/core/session';
import type { TaskRecord, TaskSpec } from '../../src/core/task-fields';
import type { UpdateAckOut, WorkerUpdate } from '../../src/core/update';
import { errorInfo, type ErrorInfo } from '../../src/errors';
import { answeredWithoutTask, withStoredTask } from '../../src/core/update-rules';

export const T0 = 1_700_000_000_000;

/** Deterministic PRNG (mulberry32): the same seed gives the same sequence in [0, 1). */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random that always answers `value` and counts how often it was asked. */
export function fixedRandom(value: number): Random & { calls: number } {
  const fn = (() => {
    fn.calls += 1;
    return value;
  }) as Random & { calls: number };
  fn.calls = 0;
  return fn;
}

/** `prefix-1`, `prefix-2`, ... */
export function sequentialIds(prefix = 'id'): () => string {
  let n = 0;
  return () => `${prefix}-${++n}`;
}

export function taskSpec(overrides: Partial<TaskSpec> = {}): TaskSpec {
  return {
    queue: 'q',
    priority: 0,
    payload: new Uint8Array(0),
    contentType: '',
    labels: {},
    preferredZone: '',
    producerZone: '',
    traceparent: '',
    tracestate: '',
    idempotencyKey: '',
    maxAttempts: 3,
    attemptTimeoutMs: 60_000,
    scheduleToStartTimeoutMs: 0,
    notBeforeMs: 0,
    ...overrides,
  };
}

export function hello(overrides: Partial<HelloSpec> = {}): HelloSpec {
  return { workerId: 'w', zone: '', labels: {}, slots: 1, queues: ['q'], ...overrides };
}

export interface UpdateFields {
  taskId: string;
  attempt: number;
  status: string;
  version: number;
  progressPermille?: number;
  result?: Uint8Array | null;
  error?: ErrorInfo | null;
}

export function makeUpdate(fields: UpdateFields, sequenceId: number): WorkerUpdate {
  return {
    taskId: fields.taskId,
    attempt: fields.attempt,
    status: fields.status,
    sequenceId,
    version: fields.version,
    progressPermille: fields.progressPermille ?? 0,
    result: fields.result ?? null,
    error: fields.error ?? null,
  };
}

export interface Assigned extends AssignmentOut {
  sessionId: string;
  taskId: string;
}

export interface CancelSent extends CancelOut {
  sessionId: string;
}

/** The worker side of one stream: a session plus the next sequence id to use. */
export class WorkerStream {
  constructor(
    private readonly h: CoreHarness,
    readonly session: SessionState,
  ) {}

  get id(): string {
    return this.session.id;
  }

  /** The sequence id the next `send` uses: one past the last one the stream consumed. */
  get nextSequenceId(): number {
    return this.session.sequence.lastSequenceId + 1;
  }

  /** Sends an update under the next sequence id, or under `sequenceId` when given. */
  send(fields: UpdateFields, sequenceId = this.nextSequenceId): UpdateAckOut {
    return this.sendRaw(makeUpdate(fields, sequenceId));
  }

  /** The ack as the dispatcher sends it: one about a task the engine does not know is completed from the store. */
  sendRaw(update: WorkerUpdate): UpdateAckOut {
    const ack = this.h.engine.applyUpdate(this.session, update);
    this.h.collect();
    if (!answeredWithoutTask(ack)) return ack;
    const stored = this.h.store.get(ack.taskId);
    return stored === undefined ? ack : withStoredTask(ack, stored, update.attempt);
  }

  /** Sends an update and returns its ack as the worker gets it: after the commit, settled (an attempt lost in that commit rejects it). */
  sendCommitted(fields: UpdateFields): UpdateAckOut {
    const update = makeUpdate(fields, this.nextSequenceId);
    const ack = this.sendRaw(update);
    this.h.settle();
    return this.h.engine.settleAck(update, ack);
  }

  running(a: { taskId: string; attempt: number }, version: number, progressPermille = 0): UpdateAckOut {
    return this.send({ taskId: a.taskId, attempt: a.attempt, status: 'RUNNING', version, progressPermille });
  }

  complete(a: { taskId: string; attempt: number }, version: number, result: Uint8Array | null = null): UpdateAckOut {
    return this.send({ taskId: a.taskId, attempt: a.attempt, status: 'COMPLETED', version, progressPermille: 1000, result });
  }

  fail(a: { taskId: string; attempt: number }, version: number, error: ErrorInfo | null): UpdateAckOut {
    return this.send({ taskId: a.taskId, attempt: a.attempt, status: 'FAILED', version, error });
  }

  cancelled(a: { taskId: string; attempt: number }, version: number): UpdateAckOut {
    return this.send({ taskId: a.taskId, attempt: a.attempt, status: 'CANCELLED', version });
  }

  /** A live worker: it sends something and answers the outstanding heartbeat. */
  touch(): void {
    this.h.engine.touch(this.session);
    const ping = this.session.outstandingPing;
    if (ping !== undefined) this.h.engine.pong(this.session, ping.nonce);
    this.h.collect();
  }

  /** A worker that keeps sending but has stopped reading: it never answers heartbeats. */
  touchWithoutReading(): void {
    this.h.engine.touch(this.session);
  }

  get heldCount(): number {
    return this.session.holds.size;
  }
}

export interface HarnessOptions {
  core?: CoreOptionsInput;
  random?: Random;
  startMs?: number;
  /** The dispatcher's zone (tasks it accepts carry it). */
  zone?: string;
  /** Share a store with another harness (several dispatchers); default: its own exclusive one. */
  store?: MemoryStoreCore;
  owner?: string;
  /** Share a clock with another harness. */
  clock?: ManualClock;
}

export const OWNER = 'dispatcher-1#1';

export class CoreHarness {
  readonly clock: ManualClock;
  readonly engine: Engine;
  readonly options: CoreOptions;
  readonly random: Random;
  readonly store: MemoryStoreCore;
  readonly owner: string;
  private assignments: Assigned[] = [];
  private cancels: CancelSent[] = [];
  private closed: { sessionId: string; cause: CloseCause }[] = [];
  private pings: Effects['pings'] = [];
  private keepaliveUpdates: Effects['keepaliveUpdates'] = [];
  /** Effects taken from the engine, waiting for the next commit. */
  private pending: Effects[] = [];
  /** The engine's events as the adapter hands them to observers (after the commit that carried them). */
  readonly events: Effects['events'] = [];
  private commitsToFail = 0;
  private workerNo = 0;
  /** The batches committed, newest last. */
  readonly batches: CommitBatch[] = [];
  /** Ids inserted or written since the last dirtyIds(). */
  private written: string[] = [];

  constructor(opts: HarnessOptions = {}) {
    this.clock = opts.clock ?? new ManualClock(opts.startMs ?? T0);
    this.options = compileCoreOptions({ ...opts.core, keepalive: { ...SEED_KEEPALIVE, ...opts.core?.keepalive } });
    this.random = opts.random ?? fixedRandom(0.5);
    this.store = opts.store ?? new MemoryStoreCore();
    this.owner = opts.owner ?? OWNER;
    const zone = opts.zone ?? '';
    this.engine = new Engine(this.options, this.clock, this.random, sequentialIds(opts.owner === undefined ? 'id' : opts.owner.split('#')[0]!), { owner: this.owner, zone });
    this.store.register({ owner: this.owner, dispatcherId: this.owner.split('#')[0]!, zone, address: '' }, this.now, this.now + this.options.taskLeaseMs);
  }

  /** Keeps this dispatcher's entry live, as the adapter's heartbeat does (advance() does it too). */
  heartbeat(): void {
    this.store.heartbeat(this.owner, this.now, this.now + this.options.taskLeaseMs);
  }

  get now(): number {
    return this.clock.nowMs();
  }

  /** Takes the engine's effects; they are delivered after the next commit. */
  collect(): void {
    this.pending.push(this.engine.takeEffects());
  }

  /** Delivers effects as the adapter does after a durable commit: assignments only while still current. */
  private deliver(effects: Effects): void {
    this.events.push(...effects.events);
    for (const [sessionId, list] of effects.assignments) {
      for (const a of list) {
        if (this.engine.isAssigned(sessionId, a.task.id, a.attempt)) this.assignments.push({ ...a, task: this.task(a.task.id), sessionId, taskId: a.task.id });
      }
    }
    for (const [sessionId, list] of effects.cancels) {
      for (const c of list) this.cancels.push({ ...c, sessionId });
    }
    this.closed.push(...effects.closed);
    this.pings.push(...effects.pings);
    this.keepaliveUpdates.push(...effects.keepaliveUpdates);
  }

  /** The next `n` commits fail (nothing written), as a store outage would. */
  failNextCommits(n: number): void {
    this.commitsToFail = n;
  }

  /**
   * One group commit, as the adapter runs it: the engine's batch goes to the
   * store, its outcome back to the engine, then the effects are delivered.
   * Returns the ids the batch inserted or wrote (what became durable).
   */
  commit(): string[] {
    this.collect();
    const batch = this.engine.beginCommit();
    if (batch === undefined) {
      for (const effects of this.pending.splice(0)) this.deliver(effects);
      return [];
    }
    if (this.commitsToFail > 0) {
      this.commitsToFail -= 1;
      const dropped = this.engine.commitFailed();
      // As the dispatcher does: what was told of a dropped task never became durable.
      for (const effects of this.pending) effects.events = withoutTasks(effects.events, dropped);
      return [];
    }
    this.batches.push(batch);
    const outcome = this.store.commit(batch);
    this.engine.commitSucceeded(outcome);
    this.collect();
    for (const effects of this.pending.splice(0)) this.deliver(effects);
    const ids = [...batch.inserts.map((r) => r.id), ...batch.writes.map((w) => w.record.id)];
    this.written.push(...ids, ...outcome.claimed.flat().map((c) => c.task.id));
    return ids;
  }

  /** Commits until the engine has nothing more to do (claims that fill freed slots included). */
  settle(): string[] {
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      ids.push(...this.commit());
      if (!this.engine.hasWork) return ids;
    }
    throw new Error('the engine still has work after 50 commits');
  }

  /** The task as it is now: the engine's copy while it holds it, else the store's. */
  task(id: string): TaskRecord {
    return liveTask(id, () => this.engine.getTask(id) ?? this.store.peek(id));
  }

  /** Sweeps the store as the adapter's timer does, and commits what the engine decided. */
  sweep(limit = 500): void {
    this.settle();
    const found = this.store.sweep(this.owner, this.now, limit);
    this.engine.applySweep(found.leaseExpired, found.startExpired);
    this.engine.recheckBacklog();
    this.settle();
  }

  submit(overrides: Partial<TaskSpec> = {}): TaskRecord {
    const { task } = this.engine.submit(taskSpec(overrides));
    this.collect();
    return this.task(task.id);
  }

  open(overrides: Partial<HelloSpec> = {}): WorkerStream {
    this.workerNo += 1;
    const session = this.engine.openSession(hello({ workerId: `worker-${this.workerNo}`, ...overrides }));
    this.collect();
    return new WorkerStream(this, session);
  }

  /**
   * Commits until nothing is left to do and returns the assignments made,
   * grouped by session (the engine reports them per session): in dispatch
   * order within a session, but not across sessions. Use `byTask` to
   * compare across sessions.
   */
  dispatch(): Assigned[] {
    this.settle();
    return this.takeAssignments();
  }

  /** Advances the clock, handles every deadline that has passed, sweeps the store (as the adapter's timer does) and commits. */
  advance(ms: number): void {
    this.clock.advance(ms);
    this.heartbeat();
    this.engine.tick();
    this.sweep();
  }

  /** Advances the clock to an absolute instant, then ticks, sweeps and commits. */
  advanceTo(atMs: number): void {
    this.clock.set(atMs);
    this.heartbeat();
    this.engine.tick();
    this.sweep();
  }

  close(w: WorkerStream, cause: CloseCause = 'STREAM_ENDED'): void {
    this.engine.closeSession(w.session, cause);
    this.collect();
  }

  drain(w: WorkerStream, graceMs?: number): void {
    if (graceMs === undefined) this.engine.drain(w.session);
    else this.engine.drain(w.session, graceMs);
    this.collect();
  }

  /** CancelTask as the dispatcher runs it: through the engine when it holds the task, else in the store. */
  cancel(taskId: string, reason = ''): ReturnType<Engine['cancel']> {
    const out = this.engine.cancel(taskId, reason);
    this.collect();
    if (out !== undefined) return out;
    const stored = this.store.cancel(taskId, this.now, errorInfo('CANCELLED', reason === '' ? 'cancelled by request' : `cancelled: ${reason}`));
    if (stored === undefined) return undefined;
    if (stored.cancelled) this.written.push(taskId);
    if (stored.cancelled && stored.previousOwner === this.owner) this.engine.lose(taskId, stored.task);
    return { state: stored.task.state, cancelled: stored.cancelled };
  }

  setSlots(w: WorkerStream, slots: number): void {
    this.engine.setSlots(w.session, slots);
    this.collect();
  }

  takeAssignments(): Assigned[] {
    const out = this.assignments;
    this.assignments = [];
    return out;
  }

  takeCancels(): CancelSent[] {
    this.settle();
    const out = this.cancels;
    this.cancels = [];
    return out;
  }

  takeClosed(): { sessionId: string; cause: CloseCause }[] {
    this.settle();
    const out = this.closed;
    this.closed = [];
    return out;
  }

  /** Explicit heartbeats the engine asked the adapter to send since the last call. */
  takePings(): Effects['pings'] {
    this.settle();
    const out = this.pings;
    this.pings = [];
    return out;
  }

  /** New intervals the engine asked the adapter to announce (KeepaliveUpdate) since the last call. */
  takeKeepaliveUpdates(): Effects['keepaliveUpdates'] {
    this.settle();
    const out = this.keepaliveUpdates;
    this.keepaliveUpdates = [];
    return out;
  }

  /** Ids of the tasks written since the last call (what the adapter committed, and what it commits now). */
  dirtyIds(): string[] {
    this.settle();
    const out = [...new Set(this.written)];
    this.written = [];
    return out;
  }
}

/** A view of a task that reads its current state at every access (the engine moves tasks to and from the store). */
function liveTask(id: string, read: () => TaskRecord | undefined): TaskRecord {
  let last: TaskRecord | undefined;
  const current = (): TaskRecord => {
    last = read() ?? last;
    if (last === undefined) throw new Error(`task ${id} is neither in the engine nor in the store`);
    return last;
  };
  return new Proxy({} as TaskRecord, {
    get: (_target, key) => (key === 'id' ? id : Reflect.get(current(), key)),
    has: (_target, key) => Reflect.has(current(), key),
    ownKeys: () => Reflect.ownKeys(current()),
    getOwnPropertyDescriptor: (_target, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(current(), key);
      return descriptor === undefined ? undefined : { ...descriptor, configurable: true };
    },
    set: () => {
      throw new Error('a live task view is read-only');
    },
  });
}

export function createHarness(opts: HarnessOptions = {}): CoreHarness {
  return new CoreHarness(opts);
}

/** Submits a task, dispatches it to `w` and returns the assignment (throws if it went elsewhere). */
export function submitAndAssign(h: CoreHarness, w: WorkerStream, overrides: Partial<TaskSpec> = {}): Assigned {
  const task = h.submit(overrides);
  const assigned = h.dispatch();
  const mine = assigned.find((a) => a.taskId === task.id);
  if (mine === undefined || mine.sessionId !== w.id) {
    throw new Error(`task ${task.id} was not assigned to ${w.id}: ${JSON.stringify(assigned.map((a) => [a.taskId, a.sessionId]))}`);
  }
  return mine;
}

/** taskId -> sessionId of a batch of assignments. */
export function byTask(assigned: Assigned[]): Record<string, string> {
  return Object.fromEntries(assigned.map((a) => [a.taskId, a.sessionId]));
}
