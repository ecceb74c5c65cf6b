import { randomUUID } from 'node:crypto';
import { Engine, type Effects } from '../core/engine';
import { systemClock, type Clock, type Random } from '../core/clock';
import type { CoreOptions } from '../core/options';
import type { CloseCause, HelloSpec, SessionState } from '../core/session';
import { compileTaskSpec, type RawSubmit } from '../core/submit-spec';
import type { TaskRecord } from '../core/task';
import type { UpdateAckOut, WorkerUpdate } from '../core/update';
import { answeredWithoutTask, withStoredTask } from '../core/update-rules';
import { ZonalError, type ErrorInfo } from '../errors';
import { createLogger } from '../log';
import { encodeAssignment } from '../protocol/codec';
import { toServiceError } from '../protocol/grpc-errors';
import type { TaskStore } from '../store/task-store';
import { Persister, type AfterCommit } from './persister';
import { untilTerminal, WatchRegistry, type WatchListener } from './watch-registry';
import type { WorkerStream } from './worker-stream';

const log = createLogger('dispatcher');
const MAX_TIMER_MS = 60_000;

/**
 * Lifecycle of a dispatcher:
 * - INITIALIZED: constructed, store not yet recovered.
 * - RUNNING: accepting producers and workers.
 * - STOPPING: GoAway sent; refusing new calls; in-flight tasks may finish.
 * - STOPPED: everything flushed and closed.
 */
export type DispatcherLifecycle = 'INITIALIZED' | 'RUNNING' | 'STOPPING' | 'STOPPED';

export interface SubmitOutcome {
  taskId: string;
  deduplicated: boolean;
  error: ErrorInfo | null;
}

export interface DispatcherDeps {
  core: CoreOptions;
  store: TaskStore;
  clock?: Clock;
  random?: Random;
  /** How long finished tasks stay readable by GetTask. */
  finishedRetentionMs: number;
  purgeIntervalMs?: number;
  /** Who this dispatcher is, for Welcome and served_by. */
  identity?: { id: string; zone: string };
}

/**
 * The adapter around the pure Engine: owns the timers, the group-commit
 * persister, the worker streams and the watchers. Every engine change is
 * followed by a commit, and every effect (answers, assignments, cancels,
 * stream ends) is carried out only after that commit.
 */
export class Dispatcher {
  readonly engine: Engine;
  private readonly persister: Persister;
  private readonly watchers = new WatchRegistry((error) => this.reportError(error, { where: 'watch listener' }));
  private readonly streams = new Map<string, WorkerStream>();
  private readonly clock: Clock;
  private tickTimer: NodeJS.Timeout | undefined;
  private tickAtMs = Infinity;
  private purgeTimer: NodeJS.Timeout | undefined;
  private lifecycleState: DispatcherLifecycle = 'INITIALIZED';
  errorsReported = 0;
  heartbeatsSent = 0;
  private overBudgetReported = false;
  /** Sessions ended, by cause (dead = IDLE, stalled = STALLED, ...). */
  readonly closedByCause: Partial<Record<CloseCause, number>> = {};

  constructor(private readonly deps: DispatcherDeps) {
    this.clock = deps.clock ?? systemClock;
    this.engine = new Engine(deps.core, this.clock, deps.random ?? Math.random, randomUUID);
    this.persister = new Persister(this.engine, deps.store, () => this.engine.coreOptions.idempotencyRetentionMs, {
      beforeCommit: () => this.beforeCommit(),
      committed: (records) => this.watchers.notify(records),
      onError: (error) => this.reportError(error, { where: 'store commit' }),
    });
  }

  get lifecycle(): DispatcherLifecycle {
    return this.lifecycleState;
  }

  get coreOptions(): CoreOptions {
    return this.engine.coreOptions;
  }

  get identity(): { id: string; zone: string } {
    return this.deps.identity ?? { id: String(process.pid), zone: '' };
  }

  /** "<zone>/<id>", sent with every submit answer. */
  get servedBy(): string {
    return `${this.identity.zone}/${this.identity.id}`;
  }

  private setLifecycle(next: DispatcherLifecycle): void {
    log.info('lifecycle', { from: this.lifecycleState, to: next });
    this.lifecycleState = next;
  }

  /** Recovers unfinished tasks from the store and starts accepting work. */
  async start(): Promise<{ recovered: number }> {
    await this.deps.store.open();
    const unfinished = await this.deps.store.loadUnfinished();
    this.engine.recover(unfinished);
    await this.persister.barrier();
    const purgeIntervalMs = this.deps.purgeIntervalMs ?? 60_000;
    this.purgeTimer = setInterval(() => void this.purge(), purgeIntervalMs);
    this.purgeTimer.unref();
    this.setLifecycle('RUNNING');
    return { recovered: unfinished.length };
  }

  reportError(error: unknown, fields: Record<string, unknown>): void {
    this.errorsReported += 1;
    log.error('background failure', { ...fields, error });
  }

  toStatus(error: unknown): ReturnType<typeof toServiceError> {
    return toServiceError(error);
  }

  /** Throws SHUTTING_DOWN unless RUNNING. */
  assertAccepting(): void {
    if (this.lifecycleState !== 'RUNNING') {
      throw new ZonalError('SHUTTING_DOWN', `the dispatcher is ${this.lifecycleState}; retry against another dispatcher or after it restarts`);
    }
  }

  // ---------------------------------------------------------------- producers

  async submit(raws: RawSubmit[]): Promise<SubmitOutcome[]> {
    this.assertAccepting();
    const core = this.engine.coreOptions;
    if (raws.length > core.maxBatchTasks) {
      throw new ZonalError('BATCH_TOO_LARGE', `a batch holds at most ${core.maxBatchTasks} tasks (maxBatchTasks), got ${raws.length}; split it`);
    }
    const now = this.clock.nowMs();
    const outcomes: SubmitOutcome[] = new Array(raws.length);
    const specs = raws.map((raw, i) => {
      try {
        return compileTaskSpec(raw, core, now);
      } catch (err) {
        outcomes[i] = { taskId: '', deduplicated: false, error: asZonal(err).toInfo() };
        return undefined;
      }
    });
    // Keys not known in memory are looked up in the store first (they may belong to finished tasks).
    const stored = await Promise.all(
      specs.map((spec) =>
        spec !== undefined && spec.idempotencyKey !== '' && this.engine.findByIdempotencyKey(spec.idempotencyKey) === undefined
          ? this.deps.store.findByIdempotencyKey(spec.idempotencyKey, now)
          : undefined,
      ),
    );
    this.assertAccepting();
    // From here to the end of the loop nothing awaits, so a key cannot be created twice.
    specs.forEach((spec, i) => {
      if (spec === undefined) return;
      const existing = spec.idempotencyKey === '' ? undefined : (this.engine.findByIdempotencyKey(spec.idempotencyKey) ?? stored[i]);
      if (existing !== undefined) {
        outcomes[i] = { taskId: existing.id, deduplicated: true, error: null };
        return;
      }
      outcomes[i] = { taskId: this.engine.submit(spec).id, deduplicated: false, error: null };
    });
    try {
      await this.persister.barrier();
    } catch (err) {
      throw new ZonalError('STORE_UNAVAILABLE', `the task store failed to commit (${String(err instanceof Error ? err.message : err)}); retry with the same idempotency key`, { cause: err });
    }
    return outcomes;
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    return this.engine.getTask(taskId) ?? (await this.deps.store.get(taskId));
  }

  async cancel(taskId: string, reason: string): Promise<{ state: TaskRecord['state']; cancelled: boolean } | undefined> {
    this.assertAccepting();
    const outcome = this.engine.cancel(taskId, reason);
    if (outcome !== undefined) {
      await this.persister.barrier();
      return outcome;
    }
    const stored = await this.deps.store.get(taskId);
    return stored === undefined ? undefined : { state: stored.state, cancelled: false };
  }

  /**
   * Calls `listener` with the task's current state and then every durable
   * change; stops after a terminal state. Returns undefined for an unknown task.
   */
  async watch(taskId: string, listener: WatchListener, onEnd: () => void): Promise<(() => void) | undefined> {
    let stop: () => void = () => undefined;
    const deliver = untilTerminal(listener, () => {
      stop();
      onEnd();
    });
    stop = this.watchers.add(taskId, deliver);
    const current = await this.getTask(taskId);
    if (current === undefined) {
      stop();
      return undefined;
    }
    deliver({ ...current });
    return stop;
  }

  // ---------------------------------------------------------------- workers

  openSession(hello: HelloSpec, stream: WorkerStream): SessionState {
    this.assertAccepting();
    const session = this.engine.openSession(hello);
    this.streams.set(session.id, stream);
    log.debug('session opened', { sessionId: session.id, workerId: hello.workerId, zone: hello.zone, slots: hello.slots });
    this.changed();
    return session;
  }

  touch(session: SessionState): void {
    this.engine.touch(session);
  }

  noteOutbound(session: SessionState): void {
    this.engine.noteOutbound(session);
  }

  pong(session: SessionState, nonce: number): void {
    this.engine.pong(session, nonce);
    this.changed();
  }

  setSlots(session: SessionState, slots: number): void {
    this.engine.setSlots(session, slots);
    this.changed();
  }

  /**
   * New core options (a runtime config update): in force at once for every
   * running session; workers whose heartbeat interval or idle timeout
   * changed are told with a KeepaliveUpdate, nobody reconnects.
   */
  setCoreOptions(next: CoreOptions): void {
    this.engine.setOptions(next);
    this.changed();
  }

  applyUpdate(session: SessionState, update: WorkerUpdate): UpdateAckOut {
    const ack = this.engine.applyUpdate(session, update);
    this.changed();
    return ack;
  }

  /** An ack about a task the engine does not know, completed with what the store says of it (see withStoredTask). */
  async withStoredState(ack: UpdateAckOut): Promise<UpdateAckOut> {
    if (!answeredWithoutTask(ack)) return ack;
    const stored = await this.deps.store.get(ack.taskId);
    return stored === undefined ? ack : withStoredTask(ack, stored);
  }

  drain(session: SessionState): void {
    this.engine.drain(session);
    this.changed();
  }

  closeSession(session: SessionState, cause: CloseCause, detail: string): void {
    log.debug('session closed', { sessionId: session.id, cause, detail });
    this.engine.closeSession(session, cause);
    this.streams.delete(session.id);
    this.changed();
  }

  /** Asks workers from zones that have a healthy dispatcher again to move back there. */
  rebalanceZones(ownZone: string, healthyZones: readonly string[]): void {
    if (this.lifecycleState !== 'RUNNING') return;
    const moved = this.engine.rebalanceZones(ownZone, healthyZones);
    if (moved > 0) {
      log.info('asked cross-zone workers to move back to their zone', { moved, healthyZones });
      this.changed();
    }
  }

  afterCommit(fn: AfterCommit): void {
    this.persister.afterCommit((error) => {
      // A failed commit is retried by the persister; the answer waits for it.
      if (error !== undefined && this.lifecycleState !== 'STOPPED') this.afterCommit(fn);
      else if (error === undefined) fn();
    });
  }

  // ---------------------------------------------------------------- shutdown

  /**
   * Sends GoAway to every worker, refuses new calls, lets in-flight tasks
   * finish for up to `graceMs`, re-queues what is left, flushes the store.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.lifecycleState === 'STOPPING' || this.lifecycleState === 'STOPPED') return;
    this.setLifecycle('STOPPING');
    const deadlineMs = this.clock.nowMs() + graceMs;
    for (const stream of this.streams.values()) {
      stream.send({ kind: 'goAway', goAway: { reason: 'SHUTDOWN', drainDeadlineUnixMs: deadlineMs } });
    }
    this.engine.drainAll(graceMs);
    this.changed();
    await this.waitFor(() => this.streams.size === 0, graceMs + 100);
    for (const [sessionId] of this.streams) {
      const session = this.engine.getSession(sessionId);
      if (session !== undefined) this.engine.closeSession(session, 'SHUTDOWN');
    }
    this.changed();
    await this.persister.barrier().catch((err: unknown) => this.reportError(err, { where: 'final flush' }));
    for (const stream of this.streams.values()) stream.closedByCore('SHUTDOWN');
    this.streams.clear();
    this.clearTimers();
    this.persister.close();
    await this.deps.store.close();
    this.setLifecycle('STOPPED');
  }

  /** Stops without draining (tests simulate a crash with a real SIGKILL instead). */
  private clearTimers(): void {
    if (this.tickTimer !== undefined) clearTimeout(this.tickTimer);
    if (this.purgeTimer !== undefined) clearInterval(this.purgeTimer);
    this.tickTimer = undefined;
    this.purgeTimer = undefined;
    this.tickAtMs = Infinity;
  }

  private waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const started = Date.now();
      const poll = (): void => {
        if (condition() || Date.now() - started >= timeoutMs) resolve();
        else setTimeout(poll, 20);
      };
      poll();
    });
  }

  // ---------------------------------------------------------------- internals

  /** Something changed in the engine: commit soon; dispatch and timers follow in beforeCommit. */
  private changed(): void {
    this.persister.schedule();
  }

  private beforeCommit(): void {
    this.engine.dispatch();
    const effects = this.engine.takeEffects();
    if (
      effects.assignments.size > 0 ||
      effects.cancels.size > 0 ||
      effects.closed.length > 0 ||
      effects.goAways.length > 0 ||
      effects.pings.length > 0 ||
      effects.keepaliveUpdates.length > 0
    ) {
      this.persister.afterCommit(() => this.deliver(effects));
    }
    this.rescheduleTick();
  }

  private deliver(effects: Effects): void {
    for (const [sessionId, assignments] of effects.assignments) {
      this.streams.get(sessionId)?.send({ kind: 'assignments', assignments: { assignments: assignments.map(encodeAssignment) } });
    }
    for (const [sessionId, cancels] of effects.cancels) {
      const stream = this.streams.get(sessionId);
      for (const cancel of cancels) stream?.send({ kind: 'cancel', cancel });
    }
    for (const { sessionId, nonce, sentMs } of effects.pings) {
      this.streams.get(sessionId)?.send({ kind: 'ping', ping: { nonce, sentUnixMs: sentMs } });
    }
    this.heartbeatsSent += effects.pings.length;
    for (const { sessionId, intervalMs, idleTimeoutMs } of effects.keepaliveUpdates) {
      this.streams.get(sessionId)?.send({ kind: 'keepalive', keepalive: { heartbeatIntervalMs: intervalMs, idleTimeoutMs } });
    }
    if (this.engine.keepaliveOverBudget !== this.overBudgetReported) {
      this.overBudgetReported = this.engine.keepaliveOverBudget;
      if (this.overBudgetReported) log.warn('heartbeat budget exceeded: the load-balancer and dead-peer caps win, so heartbeats exceed heartbeatBudgetPerSec', { sessions: this.engine.sessionCount });
    }
    for (const { sessionId, reason, drainDeadlineMs } of effects.goAways) {
      this.streams.get(sessionId)?.send({ kind: 'goAway', goAway: { reason, drainDeadlineUnixMs: drainDeadlineMs } });
    }
    for (const { sessionId, cause } of effects.closed) {
      this.closedByCause[cause] = (this.closedByCause[cause] ?? 0) + 1;
      const stream = this.streams.get(sessionId);
      this.streams.delete(sessionId);
      stream?.closedByCore(cause);
    }
  }

  private rescheduleTick(): void {
    const next = this.engine.nextWakeAtMs();
    if (next === undefined || this.lifecycleState === 'STOPPED') return;
    if (this.tickTimer !== undefined && next >= this.tickAtMs) return;
    if (this.tickTimer !== undefined) clearTimeout(this.tickTimer);
    this.tickAtMs = next;
    this.tickTimer = setTimeout(() => {
      this.tickTimer = undefined;
      this.tickAtMs = Infinity;
      try {
        this.engine.tick();
      } catch (err) {
        this.reportError(err, { where: 'tick' });
      }
      this.changed();
      // Long timeouts are capped: Node timers overflow past 24.8 days, and an early wake-up is harmless.
    }, Math.min(MAX_TIMER_MS, Math.max(0, next - this.clock.nowMs())));
  }

  private async purge(): Promise<void> {
    try {
      const now = this.clock.nowMs();
      await this.deps.store.purge(now, now - this.deps.finishedRetentionMs, 1000);
    } catch (err) {
      this.reportError(err, { where: 'purge' });
    }
  }

  /** For tests and health: flushes everything pending. */
  flush(): Promise<void> {
    return this.persister.barrier();
  }

  stats(): {
    tasksInMemory: number;
    sessions: number;
    ready: number;
    commits: number;
    recordsCommitted: number;
    heartbeatsSent: number;
    heartbeatOverBudget: boolean;
    sessionsClosedByCause: Partial<Record<CloseCause, number>>;
  } {
    return {
      ...this.engine.stats(),
      commits: this.persister.commits,
      recordsCommitted: this.persister.recordsCommitted,
      heartbeatsSent: this.heartbeatsSent,
      heartbeatOverBudget: this.engine.keepaliveOverBudget,
      sessionsClosedByCause: { ...this.closedByCause },
    };
  }
}

function asZonal(err: unknown): ZonalError {
  return err instanceof ZonalError ? err : new ZonalError('INTERNAL', String(err instanceof Error ? err.message : err));
}
