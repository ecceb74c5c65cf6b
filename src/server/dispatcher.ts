import { randomBytes } from 'node:crypto';
import { newTaskId } from '../ids';
import { Engine, withoutTasks, type Effects } from '../core/engine';
import { newEffects } from '../core/engine-types';
import { systemClock, type Clock, type Random } from '../core/clock';
import type { CoreOptions } from '../core/options';
import type { CloseCause, HelloSpec, SessionState } from '../core/session';
import { compileTaskSpec, type RawSubmit, type TaskRecord } from '../core/task-fields';
import type { UpdateAckOut, WorkerUpdate } from '../core/update';
import { taskEvent, type EngineEvent, type EngineObserver } from '../core/task-events';
import { answeredWithoutTask, withStoredTask } from '../core/update-rules';
import { errorInfo, ZonalError, type ErrorInfo } from '../errors';
import { createLogger } from '../log';
import { encodeAssignment } from '../protocol/codec';
import { toServiceError } from '../protocol/grpc-errors';
import type { Outgoing, WireDispatcherMessage } from '../protocol/wire';
import { Breaker, compileBreakerOptions, type CircuitState } from '../resilience/breaker';
import type { StoreEvent, TaskStore } from '../store/task-store';
import { Persister, type AfterCommit } from './persister';
import { RemoteWatches } from './remote-watches';
import { untilTerminal, WatchRegistry, type WatchListener } from './watch-registry';

const log = createLogger('dispatcher');
const MAX_TIMER_MS = 60_000;
/** Tasks a sweep takes in at most, of each kind. */
const SWEEP_LIMIT = 500;
/**
 * How often, at most, a sweep has every queue with free slots claim again
 * although no wake-up said so. A safety net only: wake-ups (own releases,
 * LISTEN/NOTIFY, resync after a reconnect, the store's next-claimable time)
 * already cover every known case, and a claim per second per idle queue
 * would cost an idle dispatcher a transaction a second.
 */
const BACKLOG_RECHECK_MS = 10_000;

/**
 * The store's breaker: a store that fails 3 calls in 10 s (half of them at
 * least) is not called for 2 s, so producers get UNAVAILABLE at once instead
 * of waiting on a store that does not answer.
 */
const STORE_BREAKER = compileBreakerOptions({ volumeThreshold: 3, errorThresholdPercentage: 50, rollingWindowMs: 10_000, rollingWindowBuckets: 10, resetTimeoutMs: 2_000 });

/**
 * Lifecycle of a dispatcher:
 * - INITIALIZED: constructed, not yet registered with the store.
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
  /** How often the store is swept for expired leases and schedule-to-start deadlines. */
  sweepIntervalMs?: number;
  /** How often tasks watched here but held elsewhere (another dispatcher, or the store) are read again. */
  remoteWatchPollMs?: number;
  /** Who this dispatcher is, for Welcome, served_by and the store. */
  identity?: { id: string; zone: string; address?: string };
  /** Told what the engine observed (task-events.ts), once durable: metrics, traces, the heatmap. */
  observers?: readonly EngineObserver[];
}

/** The dispatcher's counts, for /readyz and metrics. */
export interface DispatcherStats {
  tasksInMemory: number;
  sessions: number;
  heldTasks: number;
  commits: number;
  recordsCommitted: number;
  commitFailures: number;
  heartbeatsSent: number;
  heartbeatOverBudget: boolean;
  sessionsClosedByCause: Partial<Record<CloseCause, number>>;
  /** Other live dispatchers on the same store (at the last heartbeat). */
  peers: number;
  tasksSwept: number;
  tasksLost: number;
}

/** Whether the dispatcher accepts work, and if not, why. */
export interface Readiness {
  ready: boolean;
  lifecycle: DispatcherLifecycle;
  store: { kind: string; ok: boolean; circuit: CircuitState; detail: string };
}

/**
 * The adapter around the pure Engine: owns the timers, the group-commit
 * persister, the worker streams, the watchers and the dispatcher's entry in
 * the store (heartbeat, sweep, wake-ups). Every engine change is followed by
 * a commit, and every effect (answers, assignments, cancels, stream ends) is
 * carried out only after that commit.
 */
/** Submitted tasks waiting for their commit, at most; past it submits are refused OVERLOADED (memory stays bounded while the store is slow). */
export const MAX_SUBMITS_IN_FLIGHT = 100_000;

export class Dispatcher {
  readonly engine: Engine;
  private submitsInFlight = 0;
  /** This process in the store: `<dispatcher id>#<random>`, new at every start. */
  readonly owner: string;
  private readonly persister: Persister;
  private readonly watchers = new WatchRegistry((error) => this.reportError(error, { where: 'watch listener' }));
  private readonly remoteWatches: RemoteWatches;
  private readonly streams = new Map<string, StreamSink>();
  private readonly clock: Clock;
  private readonly storeBreaker: Breaker;
  private tickTimer: NodeJS.Timeout | undefined;
  private tickAtMs = Infinity;
  private purgeTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private lifecycleState: DispatcherLifecycle = 'INITIALIZED';
  /** Effects taken for commits not yet durable, delivered after the next one that is. */
  private pendingEffects: Effects[] = [];
  /** Effects the engine made while the last commit was in flight (taken when the store answered). */
  private madeInFlight: Effects | undefined;
  private sweeping = false;
  /** When the last sweep had every queue claim again (BACKLOG_RECHECK_MS). */
  private recheckedAtMs = -Infinity;
  errorsReported = 0;
  /** Errors thrown by observers (counted apart: zonal_observer_errors_total). */
  observerErrors = 0;
  heartbeatsSent = 0;
  private peers = 0;
  private tasksSwept = 0;
  private tasksLost = 0;
  private overBudgetReported = false;
  /** Sessions ended, by cause (dead = IDLE, stalled = STALLED, ...). */
  readonly closedByCause: Partial<Record<CloseCause, number>> = {};

  constructor(private readonly deps: DispatcherDeps) {
    this.clock = deps.clock ?? systemClock;
    const identity = this.identity;
    this.owner = `${identity.id}#${randomBytes(4).toString('hex')}`;
    this.engine = new Engine(deps.core, this.clock, deps.random ?? Math.random, newTaskId, { owner: this.owner, zone: identity.zone });
    this.storeBreaker = new Breaker(`store:${deps.store.kind}`, STORE_BREAKER, { countsAsFailure: () => true });
    this.storeBreaker.onStateChange((state) => {
      if (state === 'OPEN') log.warn('the task store is failing; calls to it fail fast until a probe succeeds', { store: deps.store.kind, detail: deps.store.health().detail });
      else if (state === 'CLOSED') log.info('the task store answers again', { store: deps.store.kind });
    });
    this.persister = new Persister(this.engine, deps.store, this.owner, {
      beforeCommit: () => this.beforeCommit(),
      answered: () => {
        this.madeInFlight = this.engine.takeEffects();
      },
      committed: (records) => {
        this.watchers.notify(records);
        this.remoteWatches.committedHere(records);
      },
      delivered: () => this.deliverAll(),
      // What observers were to hear of a dropped task never became durable.
      dropped: (ids) => {
        for (const effects of this.pendingEffects) effects.events = withoutTasks(effects.events, ids);
      },
      onError: (error) => this.reportError(error, { where: 'store commit' }),
      call: (fn) => this.storeBreaker.fire(fn),
    });
    this.remoteWatches = new RemoteWatches({
      read: (ids) => this.storeBreaker.fire(() => deps.store.getMany(ids)),
      local: (id) => this.engine.getTask(id) !== undefined,
      deliver: (records) => this.watchers.notify(records),
      onError: (error) => this.reportError(error, { where: 'remote watch poll' }),
      pollMs: deps.remoteWatchPollMs ?? 100,
    });
  }

  get lifecycle(): DispatcherLifecycle {
    return this.lifecycleState;
  }

  get coreOptions(): CoreOptions {
    return this.engine.coreOptions;
  }

  get identity(): { id: string; zone: string; address: string } {
    const identity = this.deps.identity;
    return { id: identity?.id ?? String(process.pid), zone: identity?.zone ?? '', address: identity?.address ?? '' };
  }

  /** "<zone>/<id>", sent with every submit answer. */
  get servedBy(): string {
    return `${this.identity.zone}/${this.identity.id}`;
  }

  private setLifecycle(next: DispatcherLifecycle): void {
    log.info('lifecycle', { from: this.lifecycleState, to: next });
    this.lifecycleState = next;
  }

  /**
   * Opens the store, enters this dispatcher in it (ending the entries of its
   * earlier incarnations), sweeps once (so tasks a crashed predecessor held
   * are re-queued before this one serves), and starts accepting work.
   */
  async start(): Promise<{ swept: number }> {
    const store = this.deps.store;
    await store.open();
    const now = this.clock.nowMs();
    await store.register({ owner: this.owner, dispatcherId: this.identity.id, zone: this.identity.zone, address: this.identity.address }, now, now + this.engine.coreOptions.taskLeaseMs);
    this.unsubscribe = store.subscribe((event) => this.onStoreEvent(event));
    const swept = await this.sweep();
    await this.persister.barrier();
    this.purgeTimer = setInterval(() => void this.purge(), this.deps.purgeIntervalMs ?? 60_000);
    this.purgeTimer.unref();
    this.scheduleHeartbeat();
    this.sweepTimer = setInterval(() => void this.sweep(), this.deps.sweepIntervalMs ?? 1_000);
    this.sweepTimer.unref();
    this.setLifecycle('RUNNING');
    return { swept };
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

  /** Throws STORE_UNAVAILABLE at once while the store's breaker is open. */
  private assertStoreUp(): void {
    if (this.storeBreaker.state() !== 'OPEN') return;
    const health = this.deps.store.health();
    throw new ZonalError('STORE_UNAVAILABLE', `the task store (${this.deps.store.kind}) is not answering (${health.detail}); retry, or retry against another dispatcher`);
  }

  // ---------------------------------------------------------------- producers

  /** Throws BATCH_TOO_LARGE for a batch of more than maxBatchTasks tasks (checked before anything else is spent on it). */
  assertBatchSize(tasks: number): void {
    const max = this.engine.coreOptions.maxBatchTasks;
    if (tasks > max) throw new ZonalError('BATCH_TOO_LARGE', `a batch holds at most ${max} tasks (maxBatchTasks), got ${tasks}; split it`);
  }

  async submit(raws: RawSubmit[]): Promise<SubmitOutcome[]> {
    this.assertAccepting();
    this.assertStoreUp();
    this.assertBatchSize(raws.length);
    const core = this.engine.coreOptions;
    if (this.submitsInFlight + raws.length > MAX_SUBMITS_IN_FLIGHT) {
      throw new ZonalError('OVERLOADED', `${this.submitsInFlight} submitted tasks wait for the store to commit, at most ${MAX_SUBMITS_IN_FLIGHT}: retry after the pushback`, { retryPushbackMs: 100 });
    }
    this.submitsInFlight += raws.length;
    try {
      return await this.submitAdmitted(raws, core);
    } finally {
      this.submitsInFlight -= raws.length;
    }
  }

  private async submitAdmitted(raws: RawSubmit[], core: CoreOptions): Promise<SubmitOutcome[]> {
    const now = this.clock.nowMs();
    const outcomes: SubmitOutcome[] = new Array(raws.length);
    const created: { index: number; taskId: string; deduplicated: boolean }[] = [];
    raws.forEach((raw, index) => {
      try {
        const { task, deduplicated } = this.engine.submit(compileTaskSpec(raw, core, now));
        created.push({ index, taskId: task.id, deduplicated });
      } catch (err) {
        outcomes[index] = { taskId: '', deduplicated: false, error: asZonal(err).toInfo() };
      }
    });
    try {
      await this.persister.barrier();
    } catch (err) {
      throw new ZonalError('STORE_UNAVAILABLE', `the task store failed to commit (${String(err instanceof Error ? err.message : err)}); retry with the same idempotency key`, { cause: err });
    }
    for (const { index, taskId, deduplicated } of created) {
      const resolved = this.engine.resolveSubmitted(taskId);
      outcomes[index] = { taskId: resolved.taskId, deduplicated: deduplicated || resolved.deduplicated, error: null };
    }
    return outcomes;
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    return this.engine.getTask(taskId) ?? (await this.storeBreaker.fire(() => this.deps.store.get(taskId)));
  }

  /**
   * Cancels a task wherever it is: one this dispatcher holds through the
   * engine (its worker is told after the commit); any other in the store,
   * whose holder (another dispatcher) tells its worker.
   */
  async cancel(taskId: string, reason: string): Promise<{ state: TaskRecord['state']; cancelled: boolean } | undefined> {
    this.assertAccepting();
    this.assertStoreUp();
    const mark = this.engine.mark();
    const outcome = this.engine.cancel(taskId, reason);
    if (outcome !== undefined) {
      await this.persister.barrier();
      // The commit succeeded, but this task's write may have come back as a conflict (another dispatcher changed it first).
      const lost = this.engine.lostSince(taskId, mark);
      if (lost !== undefined) return { state: lost.state, cancelled: false };
      return outcome;
    }
    const message = reason === '' ? 'cancelled by request' : `cancelled: ${reason}`;
    const stored = await this.storeBreaker.fire(() => this.deps.store.cancel(taskId, this.clock.nowMs(), errorInfo('CANCELLED', message)));
    if (stored === undefined) return undefined;
    if (stored.cancelled) {
      this.watchers.notify([stored.task]);
      // Cancelled in the store, not through this engine: this dispatcher did it, so its observers hear of it.
      this.observe([taskEvent('finished', stored.task, this.clock.nowMs(), { outcome: 'CANCELLED', reason: 'CANCELLED' })]);
      // Our own earlier incarnation, or this one racing a claim: the engine lets go of it.
      if (stored.previousOwner === this.owner) this.loseTask(stored.task);
    }
    return { state: stored.task.state, cancelled: stored.cancelled };
  }

  /**
   * Calls `listener` with the task's current state and then every durable
   * change, wherever it is made; stops after a terminal state. Returns
   * undefined for an unknown task.
   */
  async watch(taskId: string, listener: WatchListener, onEnd: () => void): Promise<(() => void) | undefined> {
    let stop: () => void = () => undefined;
    const deliver = untilTerminal(listener, () => {
      stop();
      onEnd();
    });
    const unwatch = this.watchers.add(taskId, deliver);
    const unpoll = this.remoteWatches.add(taskId);
    stop = () => {
      unwatch();
      unpoll();
    };
    const current = await this.getTask(taskId);
    if (current === undefined) {
      stop();
      return undefined;
    }
    deliver({ ...current });
    return stop;
  }

  // ---------------------------------------------------------------- workers

  openSession(hello: HelloSpec, stream: StreamSink): SessionState {
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

  /** The ack to send now that its commit is durable (an update for an attempt lost meanwhile is rejected after all). */
  settleAck(update: Pick<WorkerUpdate, 'taskId' | 'attempt'>, ack: UpdateAckOut): UpdateAckOut {
    return this.engine.settleAck(update, ack);
  }

  /** An ack about a task the engine does not know, completed with what the store says of it (see withStoredTask). */
  async withStoredState(ack: UpdateAckOut, attempt: number): Promise<UpdateAckOut> {
    if (!answeredWithoutTask(ack)) return ack;
    const stored = await this.storeBreaker.fire(() => this.deps.store.get(ack.taskId));
    return stored === undefined ? ack : withStoredTask(ack, stored, attempt);
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
   * finish for up to `graceMs`, re-queues what is left (durably, for any
   * dispatcher to claim), flushes the store and leaves it.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.lifecycleState === 'STOPPING' || this.lifecycleState === 'STOPPED') return;
    const wasRunning = this.lifecycleState === 'RUNNING';
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
    this.remoteWatches.close();
    this.unsubscribe?.();
    if (wasRunning) {
      // Leaving: what it still held was given back above; a failed flush leaves its tasks to the sweep of whoever comes next.
      await this.deps.store.unregister(this.owner).catch((err: unknown) => this.reportError(err, { where: 'leaving the store' }));
    }
    this.storeBreaker.close();
    await this.deps.store.close();
    this.setLifecycle('STOPPED');
  }

  private clearTimers(): void {
    if (this.tickTimer !== undefined) clearTimeout(this.tickTimer);
    if (this.purgeTimer !== undefined) clearInterval(this.purgeTimer);
    if (this.heartbeatTimer !== undefined) clearTimeout(this.heartbeatTimer);
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    this.tickTimer = undefined;
    this.purgeTimer = undefined;
    this.heartbeatTimer = undefined;
    this.sweepTimer = undefined;
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

  // ---------------------------------------------------------------- the store

  /** Keeps this dispatcher's entry live; a lapse means others may have re-queued its tasks, so it reconciles. */
  private scheduleHeartbeat(): void {
    const intervalMs = Math.max(250, Math.floor(this.engine.coreOptions.taskLeaseMs / 3));
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = undefined;
      const now = this.clock.nowMs();
      this.storeBreaker
        .fire(() => this.deps.store.heartbeat(this.owner, now, now + this.engine.coreOptions.taskLeaseMs))
        .then(
          (outcome) => {
            this.peers = outcome.peers;
            if (!outcome.wasLive) {
              log.warn('this dispatcher\'s entry in the store had expired (the store was unreachable longer than taskLeaseMs); others may have re-queued its tasks, so it checks which it still holds', { owner: this.owner });
              this.persister.reconcileSoon();
            }
          },
          (err: unknown) => this.reportError(err, { where: 'heartbeat' }),
        )
        .finally(() => {
          if (this.lifecycleState === 'RUNNING' || this.lifecycleState === 'INITIALIZED') this.scheduleHeartbeat();
        });
    }, intervalMs);
    this.heartbeatTimer.unref();
  }

  /**
   * Takes in the tasks that need a decision because time passed: held by a
   * dispatcher that stopped heartbeating, or waiting past their
   * schedule-to-start deadline. Also has every queue with free slots claim
   * again, which catches a wake-up that was missed. Returns how many were
   * taken in.
   */
  private async sweep(): Promise<number> {
    if (this.sweeping) return 0;
    this.sweeping = true;
    try {
      let total = 0;
      for (;;) {
        const found = await this.storeBreaker.fire(() => this.deps.store.sweep(this.owner, this.clock.nowMs(), SWEEP_LIMIT));
        const n = found.leaseExpired.length + found.startExpired.length;
        if (n > 0) {
          if (found.leaseExpired.length > 0) log.info('re-queueing tasks of a dispatcher that stopped heartbeating', { tasks: found.leaseExpired.length, owners: [...new Set(found.leaseExpired.map((t) => t.owner))] });
          this.engine.applySweep(found.leaseExpired, found.startExpired);
          total += n;
          this.tasksSwept += n;
          await this.persister.barrier();
        }
        if (found.leaseExpired.length < SWEEP_LIMIT && found.startExpired.length < SWEEP_LIMIT) break;
      }
      const now = this.clock.nowMs();
      if (now - this.recheckedAtMs >= BACKLOG_RECHECK_MS) {
        this.recheckedAtMs = now;
        this.engine.recheckBacklog();
      }
      this.changed();
      return total;
    } catch (err) {
      if (this.lifecycleState === 'RUNNING') this.reportError(err, { where: 'sweep' });
      else throw err;
      return 0;
    } finally {
      this.sweeping = false;
    }
  }

  private onStoreEvent(event: StoreEvent): void {
    if (event.kind === 'ready') {
      this.engine.noteReady(event.queues, event.atMs);
      this.changed();
      return;
    }
    if (event.kind === 'resync') {
      // Wake-ups were missed: claim again, and check what this dispatcher still holds (a cancel may have gone unheard).
      this.engine.recheckBacklog();
      this.persister.reconcileSoon();
      return;
    }
    if (event.owner !== this.owner || this.engine.getTask(event.taskId) === undefined) return;
    this.storeBreaker.fire(() => this.deps.store.get(event.taskId)).then(
      (record) => {
        if (record !== undefined && record.owner !== this.owner) this.loseTask(record);
      },
      (err: unknown) => this.reportError(err, { where: 'cancel from another dispatcher' }),
    );
  }

  private loseTask(record: TaskRecord): void {
    this.tasksLost += 1;
    this.engine.lose(record.id, record);
    this.changed();
  }

  // ---------------------------------------------------------------- internals

  /** Something changed in the engine: commit soon; timers follow in beforeCommit. */
  private changed(): void {
    this.persister.schedule();
  }

  private beforeCommit(): void {
    this.pendingEffects.push(this.engine.takeEffects());
    this.rescheduleTick();
  }

  /** After a durable commit: what waited on it, then what it made (claimed tasks' assignments, cancels of lost ones). */
  private deliverAll(): void {
    const waiting = this.pendingEffects;
    this.pendingEffects = [];
    for (const effects of waiting) this.deliver(effects);
    const inFlight = this.madeInFlight;
    this.madeInFlight = undefined;
    if (inFlight !== undefined) {
      // Assignments and events of what changed during the commit wait for the next one (an
      // assignment of a task whose insert is not durable yet must not reach a worker); the
      // stream effects (pings, GoAways, closes) cannot wait.
      const later: Effects = { ...newEffects(), assignments: inFlight.assignments, cancels: inFlight.cancels, events: inFlight.events };
      this.deliver({ ...inFlight, assignments: new Map(), cancels: new Map(), events: [] });
      if (later.assignments.size > 0 || later.cancels.size > 0 || later.events.length > 0) {
        this.pendingEffects.push(later);
        this.persister.schedule();
      }
    }
    this.deliver(this.engine.takeEffects());
    this.rescheduleTick();
  }

  private deliver(effects: Effects): void {
    if (effects.events.length > 0) this.observe(effects.events);
    for (const [sessionId, assignments] of effects.assignments) {
      const stream = this.streams.get(sessionId);
      if (stream === undefined) continue;
      // An assignment whose task the commit dropped (a duplicate, a lost lease) is not sent.
      const current = assignments.filter((a) => this.engine.isAssigned(sessionId, a.task.id, a.attempt));
      if (current.length > 0) stream.send({ kind: 'assignments', assignments: { assignments: current.map(encodeAssignment) } });
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

  private observe(events: readonly EngineEvent[]): void {
    for (const observer of this.deps.observers ?? []) {
      try {
        observer.onEvents(events);
      } catch (err) {
        this.observerErrors += 1;
        this.reportError(err, { where: 'observer' });
      }
    }
  }

  /** The heartbeat interval in force by worker zone (for metrics). */
  keepaliveIntervals(): { zone: string; meanMs: number; sessions: number }[] {
    return this.engine.keepaliveIntervals();
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
      await this.storeBreaker.fire(() => this.deps.store.purge(now, now - this.deps.finishedRetentionMs, 1000));
    } catch (err) {
      this.reportError(err, { where: 'purge' });
    }
  }

  /** For tests and health: flushes everything pending. */
  flush(): Promise<void> {
    return this.persister.barrier();
  }

  stats(): DispatcherStats {
    return {
      ...this.engine.stats(),
      commits: this.persister.commits,
      recordsCommitted: this.persister.recordsCommitted,
      commitFailures: this.persister.failures,
      heartbeatsSent: this.heartbeatsSent,
      heartbeatOverBudget: this.engine.keepaliveOverBudget,
      sessionsClosedByCause: { ...this.closedByCause },
      peers: this.peers,
      tasksSwept: this.tasksSwept,
      tasksLost: this.tasksLost,
    };
  }

  readiness(): Readiness {
    const health = this.deps.store.health();
    const circuit = this.storeBreaker.state();
    const storeOk = health.ok && circuit !== 'OPEN';
    return {
      ready: this.lifecycleState === 'RUNNING' && storeOk,
      lifecycle: this.lifecycleState,
      store: { kind: this.deps.store.kind, ok: storeOk, circuit, detail: circuit === 'OPEN' && health.ok ? 'recent calls failed; waiting for a probe' : health.detail },
    };
  }

  /** State of the store's circuit breaker, for metrics. */
  storeCircuit(): CircuitState {
    return this.storeBreaker.state();
  }
}

/** What the dispatcher needs of a worker stream (worker-stream.ts implements it; it depends on the dispatcher, not the other way). */
export interface StreamSink {
  send(message: Outgoing<WireDispatcherMessage>): void;
  closedByCore(cause: CloseCause): void;
}

function asZonal(err: unknown): ZonalError {
  return err instanceof ZonalError ? err : new ZonalError('INTERNAL', String(err instanceof Error ? err.message : err));
}
