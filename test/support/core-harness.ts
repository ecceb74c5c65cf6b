/**
 * A small driver for the pure dispatch core: a ManualClock, a deterministic
 * random and id generator, and a worker stand-in that numbers its updates.
 * It only calls the Engine's public API; effects are collected after every
 * call so a test can look at what the adapter would have been told to do.
 */
import { ManualClock, type Random } from '../../src/core/clock';
import { Engine, type AssignmentOut, type CancelOut, type Effects } from '../../src/core/engine';
import { compileCoreOptions, type CoreOptions, type CoreOptionsInput } from '../../src/core/options';
import type { KeepalivePolicyOptions } from '../../src/core/keepalive-policy';

/** The seed's fixed timing (15 s heartbeats, 45 s liveness), so lease tests read in round numbers. */
export const SEED_KEEPALIVE: Partial<KeepalivePolicyOptions> = { minIntervalMs: 15_000, maxIntervalMs: 15_000, baseIdleMs: 45_000 };
import type { CloseCause, HelloSpec, SessionState } from '../../src/core/session';
import type { TaskRecord, TaskSpec } from '../../src/core/task-fields';
import type { UpdateAckOut, WorkerUpdate } from '../../src/core/update';
import type { ErrorInfo } from '../../src/errors';

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

  sendRaw(update: WorkerUpdate): UpdateAckOut {
    const ack = this.h.engine.applyUpdate(this.session, update);
    this.h.collect();
    return ack;
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
}

export class CoreHarness {
  readonly clock: ManualClock;
  readonly engine: Engine;
  readonly options: CoreOptions;
  readonly random: Random;
  private assignments: Assigned[] = [];
  private cancels: CancelSent[] = [];
  private closed: { sessionId: string; cause: CloseCause }[] = [];
  private pings: Effects['pings'] = [];
  private keepaliveUpdates: Effects['keepaliveUpdates'] = [];
  private workerNo = 0;

  constructor(opts: HarnessOptions = {}) {
    this.clock = new ManualClock(opts.startMs ?? T0);
    this.options = compileCoreOptions({ ...opts.core, keepalive: { ...SEED_KEEPALIVE, ...opts.core?.keepalive } });
    this.random = opts.random ?? fixedRandom(0.5);
    this.engine = new Engine(this.options, this.clock, this.random, sequentialIds('id'));
  }

  get now(): number {
    return this.clock.nowMs();
  }

  /** Moves the engine's pending effects into the harness buffers. */
  collect(): void {
    const effects = this.engine.takeEffects();
    for (const [sessionId, list] of effects.assignments) {
      for (const a of list) this.assignments.push({ ...a, sessionId, taskId: a.task.id });
    }
    for (const [sessionId, list] of effects.cancels) {
      for (const c of list) this.cancels.push({ ...c, sessionId });
    }
    this.closed.push(...effects.closed);
    this.pings.push(...effects.pings);
    this.keepaliveUpdates.push(...effects.keepaliveUpdates);
  }

  submit(overrides: Partial<TaskSpec> = {}): TaskRecord {
    const task = this.engine.submit(taskSpec(overrides));
    this.collect();
    return task;
  }

  open(overrides: Partial<HelloSpec> = {}): WorkerStream {
    this.workerNo += 1;
    const session = this.engine.openSession(hello({ workerId: `worker-${this.workerNo}`, ...overrides }));
    this.collect();
    return new WorkerStream(this, session);
  }

  /**
   * Runs dispatch and returns the assignments it made, grouped by session
   * (the engine reports them per session): in dispatch order within a
   * session, but not across sessions. Use `byTask` to compare across sessions.
   */
  dispatch(): Assigned[] {
    this.engine.dispatch();
    this.collect();
    return this.takeAssignments();
  }

  /** Advances the clock, then handles every deadline that has passed. */
  advance(ms: number): void {
    this.clock.advance(ms);
    this.engine.tick();
    this.collect();
  }

  /** Advances the clock to an absolute instant, then ticks. */
  advanceTo(atMs: number): void {
    this.clock.set(atMs);
    this.engine.tick();
    this.collect();
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

  cancel(taskId: string, reason = ''): ReturnType<Engine['cancel']> {
    const out = this.engine.cancel(taskId, reason);
    this.collect();
    return out;
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
    const out = this.cancels;
    this.cancels = [];
    return out;
  }

  takeClosed(): { sessionId: string; cause: CloseCause }[] {
    const out = this.closed;
    this.closed = [];
    return out;
  }

  /** Explicit heartbeats the engine asked the adapter to send since the last call. */
  takePings(): Effects['pings'] {
    const out = this.pings;
    this.pings = [];
    return out;
  }

  /** New intervals the engine asked the adapter to announce (KeepaliveUpdate) since the last call. */
  takeKeepaliveUpdates(): Effects['keepaliveUpdates'] {
    const out = this.keepaliveUpdates;
    this.keepaliveUpdates = [];
    return out;
  }

  /** Ids of the tasks changed since the last call (what the adapter would commit). */
  dirtyIds(): string[] {
    return this.engine.takeDirty().map((r) => r.id);
  }
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
