import { errorInfo, type ErrorInfo, type Reason } from '../errors';
import { Backlog } from './backlog';
import { BoundedMap } from './bounded-map';
import { planQueueClaims } from './claim-plan';
import type { Clock, Random } from './clock';
import type { ClaimGroup, CommitBatch, CommitOutcome, StateWrite } from './commit-batch';
import { keepaliveCapMs } from './keepalive-policy';
import { MinHeap } from './min-heap';
import type { CoreOptions } from './options';
import { decideRetry } from './retry-rule';
import { PendingWrites } from './pending-writes';
import { newEffects, pushTo, type CancelOutcome, type Effects, type EngineIdentity, type FinishedTask, type MoveReason, type SubmitOut } from './engine-types';
import { holdKey, SessionState, type CloseCause, type HelloSpec } from './session';
import { heartbeatTick, retuneKeepalive } from './session-keepalive';
import { SessionRing } from './session-ring';
import { taskEvent, type EngineEvent, type TaskEvent } from './task-events';
import type { TaskRecord, TaskSpec } from './task-fields';
import { canTransition, isTerminal, type TaskState } from './task-state';
import { decideUpdate } from './update-rules';
import { remembered, type UpdateAckOut, type WorkerUpdate } from './update';

export type { AssignmentOut, CancelOut, CancelOutcome, Effects, EngineIdentity, FinishedTask, MoveReason, SubmitOut } from './engine-types';

/** How many finished (or lost) tasks are remembered after they leave memory, and duplicates resolved. */
const REMEMBERED = 10_000;

type Deadline =
  /** By id, not by record: a task that finished at once must not stay pinned (payload and result) until its attempt timeout. */
  | { atMs: number; kind: 'attempt'; taskId: string; attempt: number }
  /** Sessions by id too: a closed session leaves the map, and its deadlines then find nothing. */
  | { atMs: number; kind: 'idle' | 'drain' | 'maxAge'; sessionId: string }
  /** `generation` must match the session's: a rescheduled heartbeat retires the older deadline. */
  | { atMs: number; kind: 'heartbeat'; sessionId: string; generation: number };

/**
 * The dispatch core: every task and session rule, with no I/O and no timers.
 *
 * The store owns the tasks; the engine holds only the ones this dispatcher
 * has claimed (ASSIGNED or RUNNING on its sessions), and, until their next
 * write is durable, the ones it just created, gave back or finished. Ready
 * tasks wait in the store: the engine assigns a new task at once when a
 * session of its zone has a free slot and no older task waits, and
 * otherwise claims from the store for free slots (claim groups in the next
 * commit). Every change is written conditional on the version the store
 * holds; a change that lost (another dispatcher reaped or cancelled the
 * task) comes back as a conflict, and the engine drops the task and tells
 * the worker to abort.
 *
 * The adapter feeds it events (submits, worker messages, stream ends, the
 * passing of time through `tick`, the store's wake-ups), hands
 * `beginCommit()` to the store and its outcome to `commitSucceeded()` (or
 * calls `commitFailed()`), and only then performs `takeEffects()` and
 * answers the callers. Time comes from the injected clock; `nextWakeAtMs()`
 * says when `tick` is next needed.
 *
 * Invariant: a task in ASSIGNED or RUNNING that the engine holds has exactly
 * one non-orphan hold, in the session named by its `sessionId`, for its
 * current attempt.
 */
export class Engine {
  private readonly tasks = new Map<string, TaskRecord>();
  /** What the store does not hold yet: versions it holds, changed tasks, the commit in flight. */
  private readonly pending = new PendingWrites();
  /** Idempotency keys of new tasks not yet durable: a second submit with one gets the first task. */
  private readonly newKeys = new Map<string, string>();
  /** New tasks the store did not insert because another task holds their key: id -> that task. */
  private readonly duplicateOf = new BoundedMap<string, string>(REMEMBERED);
  private readonly finished = new BoundedMap<string, FinishedTask>(REMEMBERED);
  /** Tasks lost to another dispatcher's change: the attempt this one held, and what the store held then. */
  /** Tasks taken away from this engine; `atStep` orders the loss against accepted updates (settleAck). */
  private readonly lost = new BoundedMap<string, { attempt: number; view: FinishedTask; atStep: number }>(REMEMBERED);
  /**
   * A counter of accepted updates and losses, and the step at which each
   * accepted ack was given: an update accepted before its task was lost
   * (and so before its write could be durable) is rejected when it settles,
   * whatever attempt the task has moved to since (a retry in memory, a new
   * claim by the same commit).
   */
  private step = 0;
  private readonly acceptedAtStep = new WeakMap<UpdateAckOut, number>();
  private readonly sessions = new Map<string, SessionState>();
  private readonly rings = new Map<string, SessionRing>();
  /** What the store may hold for each queue: whether a new task may be assigned at once, whether a claim may find one. */
  private readonly backlog = new Backlog();
  private readonly deadlines = new MinHeap<Deadline>((a, b) => a.atMs < b.atMs);
  private effects: Effects = newEffects();
  private claimRound = 0;
  private pingCounter = 0;

  constructor(
    private options: CoreOptions,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly newId: () => string,
    readonly identity: EngineIdentity = { owner: 'engine#1', zone: '' },
  ) {}

  get nowMs(): number {
    return this.clock.nowMs();
  }

  get coreOptions(): CoreOptions {
    return this.options;
  }

  /**
   * Puts new (compiled) options in force while running; nothing reconnects.
   * Keepalive bounds re-decide every session's interval and idle timeout and
   * tell each worker whose values changed; the slot limit re-caps every
   * session; a changed zone spillover delay has every queue claimed again
   * under it. Retry, backoff, timeout and lease defaults apply to the next
   * submit, retry or claim, the drain grace to the next drain, the session
   * age to new sessions.
   */
  setOptions(next: CoreOptions): void {
    const previous = this.options;
    this.options = next;
    for (const session of this.sessions.values()) {
      if (session.lifecycle === 'CLOSED') continue;
      this.applySlotLimit(session);
      if (next.keepalive !== previous.keepalive) this.applyKeepalive(session, true);
    }
    if (next.zoneSpilloverDelayMs !== previous.zoneSpilloverDelayMs) this.recheckBacklog();
  }

  // ---------------------------------------------------------------- producers

  /**
   * Creates a task: assigned at once to a session of its zone with a free
   * slot when no older task of its queue may be waiting in the store, else
   * inserted ready (or delayed) for a claim. A key that matches a new task
   * not yet durable returns that task.
   */
  submit(spec: TaskSpec): SubmitOut {
    if (spec.idempotencyKey !== '') {
      const pendingId = this.newKeys.get(spec.idempotencyKey);
      const pending = pendingId === undefined ? undefined : this.tasks.get(pendingId);
      if (pending !== undefined) return { task: pending, deduplicated: true };
    }
    const now = this.nowMs;
    const readyAtMs = Math.max(spec.notBeforeMs, now);
    const task: TaskRecord = {
      id: this.newId(),
      ...spec,
      acceptedZone: this.identity.zone,
      createdMs: now,
      state: 'PENDING',
      attempt: 1,
      version: 1,
      owner: '',
      dispatcherZone: '',
      leaseExpiresMs: 0,
      sessionId: '',
      workerId: '',
      workerZone: '',
      attemptDeadlineMs: 0,
      progressPermille: 0,
      result: null,
      error: null,
      readyAtMs,
      startDeadlineMs: spec.scheduleToStartTimeoutMs > 0 ? readyAtMs + spec.scheduleToStartTimeoutMs : 0,
      updatedMs: now,
    };
    this.tasks.set(task.id, task);
    if (task.idempotencyKey !== '') this.newKeys.set(task.idempotencyKey, task.id);
    this.markDirty(task, 'none');
    this.place(task, now, 'none');
    return { task, deduplicated: false };
  }

  /** The id a submit answers with: a new task the store refused as a duplicate answers with the task that holds its key. */
  resolveSubmitted(taskId: string): { taskId: string; deduplicated: boolean } {
    const existing = this.duplicateOf.get(taskId);
    return existing === undefined ? { taskId, deduplicated: false } : { taskId: existing, deduplicated: true };
  }

  /** Summary of a task that left memory: finished here, or lost to another dispatcher's change. */
  /** A mark of now, for `lostSince`. */
  mark(): number {
    return this.step;
  }

  /** What the store held when `taskId` was taken from this engine, if that happened after `mark`. */
  lostSince(taskId: string, mark: number): FinishedTask | undefined {
    const lost = this.lost.get(taskId);
    return lost !== undefined && lost.atStep > mark ? lost.view : undefined;
  }

  finishedTask(taskId: string): FinishedTask | undefined {
    return this.finished.get(taskId) ?? this.lost.get(taskId)?.view;
  }

  /** The in-memory view of a task: held here, or with a write not yet durable. */
  getTask(taskId: string): TaskRecord | undefined {
    return this.tasks.get(taskId);
  }

  /** Cancels a task held in memory; `undefined` means the caller must cancel it in the store. */
  cancel(taskId: string, reason: string): CancelOutcome | undefined {
    const task = this.tasks.get(taskId);
    if (task === undefined) return undefined;
    if (isTerminal(task.state)) return { state: task.state, cancelled: false };
    const message = reason === '' ? 'cancelled by request' : `cancelled: ${reason}`;
    if (task.state !== 'PENDING') {
      const session = this.sessions.get(task.sessionId);
      const hold = session?.holds.get(holdKey(task.id, task.attempt));
      if (session !== undefined && hold !== undefined) {
        hold.orphan = true;
        hold.orphanReason = 'CANCELLED';
        pushTo(this.effects.cancels, session.id, { taskId: task.id, attempt: task.attempt, reason: 'CANCELLED' });
      }
    }
    this.finish(task, 'CANCELLED', errorInfo('CANCELLED', message), null);
    return { state: 'CANCELLED', cancelled: true };
  }

  // ---------------------------------------------------------------- the store's news

  /**
   * Tasks of these queues are (or will be at `atMs`) ready in the store: a
   * claim may find them. From another dispatcher's commit, a timer, or a
   * restarted wake-up channel.
   */
  noteReady(queues: readonly string[], atMs: number): void {
    const now = this.nowMs;
    for (const queue of queues) this.backlog.unknown(queue, atMs, now);
  }

  /** Every queue may have ready tasks (a missed wake-up, a changed spillover delay): claim for free slots again. */
  recheckBacklog(): void {
    const now = this.nowMs;
    for (const queue of this.rings.keys()) this.backlog.unknown(queue, now, now);
  }

  /**
   * Another dispatcher changed a task this one holds (cancelled or reaped it):
   * drop it and tell the worker to abort (`current`: what the store holds
   * now, undefined when gone). Nothing is written.
   */
  lose(taskId: string, current: TaskRecord | undefined): void {
    const task = this.tasks.get(taskId);
    if (task === undefined) return;
    // If its write is in flight, the commit's outcome decides (a conflict comes back to this).
    this.pending.inFlight?.snapshots.delete(taskId);
    const held = (task.state === 'ASSIGNED' || task.state === 'RUNNING') && task.owner === this.identity.owner;
    if (held) {
      const session = this.sessions.get(task.sessionId);
      const hold = session?.holds.get(holdKey(task.id, task.attempt));
      if (session !== undefined && hold !== undefined && !hold.orphan) {
        const reason = current?.state === 'CANCELLED' ? 'CANCELLED' : 'LEASE_LOST';
        hold.orphan = true;
        hold.orphanReason = reason;
        pushTo(this.effects.cancels, session.id, { taskId: task.id, attempt: task.attempt, reason });
      }
    }
    const view: FinishedTask = { id: task.id, state: current?.state ?? task.state, version: current?.version ?? task.version, attempt: current?.attempt ?? task.attempt, sessionId: '' };
    this.lost.set(task.id, { attempt: task.attempt, view, atStep: ++this.step });
    this.tasks.delete(task.id);
    this.pending.forget(task.id);
  }

  /**
   * The store's list of the tasks it says this dispatcher holds, after a
   * commit whose outcome was unknown: a task the engine does not hold is
   * given back (no worker saw its claim); a task the engine holds that the
   * store does not list was lost.
   */
  reconcile(owned: readonly TaskRecord[]): void {
    const listed = new Set<string>();
    for (const record of owned) {
      listed.add(record.id);
      // Known here: what the store holds is what was written, or a write still to come.
      if (this.tasks.has(record.id)) continue;
      const given = { ...record };
      this.tasks.set(given.id, given);
      this.pending.stored(given.id, given.version);
      this.giveBack(given, this.nowMs);
    }
    for (const task of [...this.tasks.values()]) {
      const held = (task.state === 'ASSIGNED' || task.state === 'RUNNING') && task.owner === this.identity.owner;
      if (held && this.pending.isStored(task.id) && !listed.has(task.id)) this.lose(task.id, undefined);
    }
  }

  /**
   * Tasks a sweep found: held by a dispatcher that stopped heartbeating
   * (re-queued with a new attempt after backoff, or failed once attempts are
   * exhausted), or waiting past their schedule-to-start deadline (failed).
   * They are written in the next commit, conditional on the version read.
   */
  applySweep(leaseExpired: readonly TaskRecord[], startExpired: readonly TaskRecord[]): void {
    const adopt = (record: TaskRecord): TaskRecord | undefined => {
      if (this.tasks.has(record.id)) return undefined;
      const task = { ...record };
      this.tasks.set(task.id, task);
      this.pending.swept(task.id, task.version);
      return task;
    };
    for (const record of leaseExpired) {
      const task = adopt(record);
      if (task === undefined) continue;
      const holder = task.owner === '' ? 'no dispatcher' : `dispatcher ${task.owner}`;
      this.retry(task, 'LEASE_LOST', `${holder} stopped heartbeating while it held attempt ${task.attempt}`, true);
    }
    for (const record of startExpired) {
      const task = adopt(record);
      if (task === undefined) continue;
      this.finish(
        task,
        'FAILED',
        errorInfo(
          'SCHEDULE_TO_START_TIMEOUT',
          `no worker started the task within schedule_to_start_timeout_ms=${task.scheduleToStartTimeoutMs}; check that workers serve queue "${task.queue}" and have free slots`,
        ),
        null,
      );
    }
  }

  // ---------------------------------------------------------------- sessions

  openSession(hello: HelloSpec): SessionState {
    const now = this.nowMs;
    const session = new SessionState(this.newId(), hello, now, this.options.sequenceWindow);
    session.slots = Math.min(hello.slots, this.options.maxSlotsPerSession);
    this.sessions.set(session.id, session);
    this.applyKeepalive(session);
    session.announcedIntervalMs = session.intervalMs;
    this.deadlines.push({ atMs: now + session.idleTimeoutMs, kind: 'idle', sessionId: session.id });
    this.deadlines.push({ atMs: now + session.intervalMs, kind: 'heartbeat', sessionId: session.id, generation: session.heartbeatGeneration });
    if (this.options.maxSessionAgeMs > 0) {
      // Jitter so sessions opened together do not all move together; drawn
      // from the session id so the injected random stays for backoff alone.
      const ageMs = this.options.maxSessionAgeMs * (1 - 0.1 * unitHash(session.id));
      this.deadlines.push({ atMs: now + Math.max(ageMs, this.options.minSessionAgeToMoveMs), kind: 'maxAge', sessionId: session.id });
    }
    // The store may hold ready tasks of its queues (some no other session could take): claim for it.
    for (const queue of session.queues) this.backlog.unknown(queue, now, now);
    this.offerSession(session);
    return session;
  }

  getSession(sessionId: string): SessionState | undefined {
    return this.sessions.get(sessionId);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Every inbound message is a sign of life. */
  touch(session: SessionState): void {
    session.lastInboundMs = this.nowMs;
  }

  /** The adapter wrote to the stream: a busy stream needs no explicit heartbeat. */
  noteOutbound(session: SessionState): void {
    session.lastOutboundMs = this.nowMs;
  }

  /**
   * A Pong: if it answers the outstanding heartbeat, it is an RTT sample and
   * proof that the worker still reads its stream.
   */
  pong(session: SessionState, nonce: number): void {
    const ping = session.outstandingPing;
    if (ping === undefined || ping.nonce !== nonce) return;
    session.outstandingPing = undefined;
    const rttMs = this.nowMs - ping.sentMs;
    session.rtt.sample(rttMs);
    this.effects.events.push({ kind: 'rtt', dispatcherZone: this.identity.zone, workerZone: session.zone, rttMs, atMs: this.nowMs });
    this.applyKeepalive(session);
  }

  /** Whether the last keepalive decision wanted more heartbeats than the budget allows (the caps won). */
  get keepaliveOverBudget(): boolean {
    const o = this.options.keepalive;
    return this.sessions.size > 0 && (this.sessions.size * 1000) / o.heartbeatBudgetPerSec > keepaliveCapMs(o).capMs;
  }

  /** The worker's slots, capped by the slot limit in force. */
  setSlots(session: SessionState, slots: number): void {
    session.requestedSlots = slots;
    this.applySlotLimit(session);
  }

  private applySlotLimit(session: SessionState): void {
    session.slots = Math.min(session.requestedSlots, this.options.maxSlotsPerSession);
    this.offerSession(session);
  }

  /** The worker announced end of stream: no new tasks; in-flight ones may finish within the grace period. */
  drain(session: SessionState, graceMs = this.options.drainGraceMs): void {
    if (session.lifecycle !== 'OPEN') return;
    session.lifecycle = 'DRAINING';
    session.drainDeadlineMs = this.nowMs + graceMs;
    this.forgetSession(session);
    if (session.holds.size === 0) {
      this.closeSession(session, 'DRAINED');
      return;
    }
    this.deadlines.push({ atMs: session.drainDeadlineMs, kind: 'drain', sessionId: session.id });
  }

  /** Drains every open session (dispatcher shutdown). */
  drainAll(graceMs: number): SessionState[] {
    const drained = [...this.sessions.values()];
    for (const session of drained) this.drain(session, graceMs);
    return drained;
  }

  /**
   * Asks sessions of workers from another zone to move when their own zone
   * has a healthy dispatcher again (`healthyZones`). A balancer places a
   * stream only when it opens, so without this they would stay cross-zone.
   * Returns how many sessions were asked to move.
   */
  rebalanceZones(ownZone: string, healthyZones: readonly string[]): number {
    const now = this.nowMs;
    let moved = 0;
    for (const session of this.sessions.values()) {
      if (session.lifecycle !== 'OPEN' || session.zone === '' || session.zone === ownZone) continue;
      if (!healthyZones.includes(session.zone) || now - session.openedMs < this.options.minSessionAgeToMoveMs) continue;
      this.moveSession(session, 'ZONE_REBALANCE');
      moved += 1;
    }
    return moved;
  }

  /** Retunes a session's keepalive (session-keepalive.ts) and carries out what that asks. */
  private applyKeepalive(session: SessionState, announceAnyChange = false): void {
    const out = retuneKeepalive(session, this.options.keepalive, this.sessions.size, this.nowMs, announceAnyChange);
    if (out.heartbeatAtMs !== undefined) this.deadlines.push({ atMs: out.heartbeatAtMs, kind: 'heartbeat', sessionId: session.id, generation: session.heartbeatGeneration });
    if (out.announce !== undefined) this.effects.keepaliveUpdates.push({ sessionId: session.id, ...out.announce });
  }

  /** One heartbeat tick of a session (session-keepalive.ts): it ends, or pings, and the next tick is scheduled. */
  private heartbeat(session: SessionState, now: number): void {
    this.applyKeepalive(session);
    const verdict = heartbeatTick(session, now, () => ++this.pingCounter);
    if (verdict.close !== undefined) {
      this.closeSession(session, verdict.close);
      return;
    }
    if (verdict.ping !== undefined) this.effects.pings.push({ sessionId: session.id, ...verdict.ping });
    this.deadlines.push({ atMs: verdict.nextAtMs, kind: 'heartbeat', sessionId: session.id, generation: session.heartbeatGeneration });
  }

  /** GoAway + drain: the worker finishes what it holds here and reconnects (its balancer picks again). */
  private moveSession(session: SessionState, reason: MoveReason): void {
    this.effects.goAways.push({ sessionId: session.id, reason, drainDeadlineMs: this.nowMs + this.options.drainGraceMs });
    this.drain(session);
  }

  /** Ends a session; its unfinished attempts lose their lease and are retried at once. */
  closeSession(session: SessionState, cause: CloseCause): void {
    if (session.lifecycle === 'CLOSED') return;
    session.lifecycle = 'CLOSED';
    this.sessions.delete(session.id);
    this.forgetSession(session);
    for (const hold of session.holds.values()) {
      if (hold.orphan) continue;
      const task = this.tasks.get(hold.taskId);
      if (task !== undefined && task.sessionId === session.id && task.attempt === hold.attempt && !isTerminal(task.state)) {
        this.retry(task, 'LEASE_LOST', `session ${session.id} of worker ${session.workerId} ended (${cause})`, false);
      }
    }
    session.holds.clear();
    this.effects.closed.push({ sessionId: session.id, cause });
    this.effects.events.push({ kind: 'sessionEnded', dispatcherZone: this.identity.zone, workerZone: session.zone, cause, lifetimeMs: this.nowMs - session.openedMs, atMs: this.nowMs });
  }

  // ---------------------------------------------------------------- updates

  applyUpdate(session: SessionState, update: WorkerUpdate): UpdateAckOut {
    // Any update about a held attempt proves the worker read its assignment.
    const held = session.holds.get(holdKey(update.taskId, update.attempt));
    if (held !== undefined && !held.acknowledged) {
      held.acknowledged = true;
      const task = held.orphan ? undefined : this.tasks.get(held.taskId);
      if (task !== undefined && task.attempt === held.attempt) this.effects.events.push(this.taskEvent('started', task, { assignedMs: held.assignedMs }));
    }
    const decision = decideUpdate(this, session, update);
    if (decision.kind === 'answer') {
      if (decision.record) session.sequence.record(remembered(update), decision.ack);
      if (decision.ack.result === 'REJECTED') this.refused(session.zone, decision.ack.reason);
      return decision.ack;
    }
    const { task, hold } = decision;
    const status = update.status;
    // What the session keeps of this update to recognise a resend (a large result by its hash).
    const kept = remembered(update);
    task.progressPermille = update.progressPermille;
    task.version = update.version;
    task.updatedMs = this.nowMs;
    let ack: UpdateAckOut;
    if (status === 'RUNNING') {
      this.transition(task, 'RUNNING');
      this.markDirty(task, 'none');
      ack = accepted(update, task);
      hold.lastAccepted = { update: kept, ack };
    } else {
      session.holds.delete(holdKey(hold.taskId, hold.attempt));
      if (status === 'COMPLETED') {
        this.finish(task, 'COMPLETED', null, update.result, false);
      } else {
        const error = update.error ?? errorInfo('HANDLER_FAILED', 'the worker reported FAILED without an error');
        if (error.retryable) {
          this.retry(task, 'HANDLER_FAILED', error.message, true, error);
        } else {
          this.finish(task, 'FAILED', error, null, false);
        }
      }
      ack = accepted(update, task);
      session.rememberFinished(task.id, kept, ack);
      this.afterRelease(session);
    }
    session.sequence.record(kept, ack);
    this.acceptedAtStep.set(ack, ++this.step);
    return ack;
  }

  /** Releases an orphan hold once its worker reports the attempt over (see update-rules). */
  releaseOrphan(session: SessionState, taskId: string, attempt: number): void {
    if (session.holds.delete(holdKey(taskId, attempt))) this.afterRelease(session);
  }

  /**
   * The ack to send once the commit that carried the update is durable: an
   * update accepted for an attempt that was lost meanwhile (its write came
   * back as a conflict) is rejected FENCED after all.
   */
  settleAck(update: Pick<WorkerUpdate, 'taskId' | 'attempt'>, ack: UpdateAckOut): UpdateAckOut {
    if (ack.result === 'REJECTED') return ack;
    const lost = this.lost.get(update.taskId);
    if (lost === undefined) return ack;
    const acceptedAt = this.acceptedAtStep.get(ack);
    // An ack accepted here is void if its task was lost after it; a DUPLICATE (no step) if its own attempt was lost and not taken again.
    const voided = acceptedAt !== undefined ? lost.atStep > acceptedAt : lost.attempt === update.attempt && !this.tasks.has(update.taskId);
    if (!voided) return ack;
    const { view } = lost;
    const terminal = isTerminal(view.state);
    this.refused('', terminal ? 'TERMINAL' : 'FENCED');
    return {
      ...ack,
      result: 'REJECTED',
      reason: terminal ? 'TERMINAL' : 'FENCED',
      message: terminal
        ? `the task became ${view.state} elsewhere before this update was durable; stop working on it`
        : `this dispatcher lost attempt ${update.attempt} to another dispatcher (it re-queued the task) before this update was durable; attempt ${view.attempt} is current`,
      state: view.state,
      version: view.version,
    };
  }

  /** Whether an assignment made to `sessionId` is still current (its commit may have dropped it). */
  isAssigned(sessionId: string, taskId: string, attempt: number): boolean {
    const hold = this.sessions.get(sessionId)?.holds.get(holdKey(taskId, attempt));
    return hold !== undefined && !hold.orphan;
  }

  // ---------------------------------------------------------------- time

  /** Earliest instant at which `tick` has work (a deadline, or a claim that may find a task), or undefined. */
  nextWakeAtMs(): number | undefined {
    const deadline = this.deadlines.peek()?.atMs;
    const due = this.backlog.nextDueAtMs(this.nowMs, this.queuesWithSessions());
    if (due === undefined) return deadline;
    return deadline === undefined ? due : Math.min(deadline, due);
  }

  /** Handles every deadline that has passed: attempt timeouts, idle sessions, drain grace, heartbeats. */
  tick(): void {
    const now = this.nowMs;
    for (;;) {
      const top = this.deadlines.peek();
      if (top === undefined || top.atMs > now) return;
      this.deadlines.pop();
      switch (top.kind) {
        case 'attempt': {
          const task = this.tasks.get(top.taskId);
          if (task !== undefined && task.attemptDeadlineMs === top.atMs && (task.state === 'ASSIGNED' || task.state === 'RUNNING') && task.attempt === top.attempt && task.owner === this.identity.owner) {
            this.timeoutAttempt(task);
          }
          break;
        }
        case 'idle': {
          const session = this.sessions.get(top.sessionId);
          if (session === undefined || session.lifecycle === 'CLOSED') break;
          const expiresMs = Math.max(session.lastInboundMs + session.idleTimeoutMs, session.idleNotBeforeMs);
          if (expiresMs <= now) this.closeSession(session, 'IDLE');
          else this.deadlines.push({ atMs: expiresMs, kind: 'idle', sessionId: session.id });
          break;
        }
        case 'drain': {
          const session = this.sessions.get(top.sessionId);
          if (session?.lifecycle === 'DRAINING') this.closeSession(session, 'DRAIN_EXPIRED');
          break;
        }
        case 'maxAge': {
          const session = this.sessions.get(top.sessionId);
          if (session?.lifecycle === 'OPEN') this.moveSession(session, 'MAX_SESSION_AGE');
          break;
        }
        case 'heartbeat': {
          const session = this.sessions.get(top.sessionId);
          if (session !== undefined && session.lifecycle !== 'CLOSED' && top.generation === session.heartbeatGeneration) this.heartbeat(session, now);
          break;
        }
      }
    }
  }

  // ---------------------------------------------------------------- commits

  /** Whether a commit has something to do: changes to write, or free slots a claim may fill. */
  get hasWork(): boolean {
    return this.pending.hasChanges || this.claimDue(this.nowMs);
  }

  /**
   * The next group commit: every task changed since the last one (a new
   * task whole, a changed one by its state, conditional on the version the
   * store holds), and claims for the free slots of queues whose store may
   * hold ready tasks. Undefined when there is nothing to do. One commit is
   * in flight at a time; its outcome goes to commitSucceeded or commitFailed.
   */
  beginCommit(): CommitBatch | undefined {
    const now = this.nowMs;
    const { inserts, writes, snapshots, inserted, requeues, swept } = this.pending.take(this.tasks);
    const claims = this.planClaims(now);
    if (inserts.length === 0 && writes.length === 0 && claims.length === 0) return undefined;
    const batch: CommitBatch = {
      nowMs: now,
      owner: this.identity.owner,
      dispatcherZone: this.identity.zone,
      leaseExpiresMs: now + this.options.taskLeaseMs,
      spilloverDelayMs: this.options.zoneSpilloverDelayMs,
      idempotencyRetentionMs: this.options.idempotencyRetentionMs,
      inserts,
      writes,
      claims,
    };
    this.pending.begin({ batch, snapshots, inserted, requeues, swept });
    return batch;
  }

  /**
   * The commit is durable. Duplicates are dropped (their submits answer with
   * the task that holds the key), conflicts lost (dropped, the worker told
   * to abort), claimed tasks assigned to their slots' sessions (or given
   * back when a session ended meanwhile). Returns every record that became
   * durable, for watchers.
   */
  commitSucceeded(outcome: CommitOutcome): TaskRecord[] {
    const flight = this.pending.end();
    const now = this.nowMs;
    const durable: TaskRecord[] = [];
    for (const [id, existing] of outcome.duplicates) this.dropDuplicate(id, existing);
    for (const [id, current] of outcome.conflicts) {
      flight.snapshots.delete(id);
      this.lose(id, current);
    }
    for (const [id, snapshot] of flight.snapshots) {
      if (outcome.duplicates.has(id)) continue;
      durable.push(snapshot);
      if (flight.inserted.has(id)) this.effects.events.push(this.taskEvent('submitted', snapshot, {}));
      if (snapshot.idempotencyKey !== '' && this.newKeys.get(snapshot.idempotencyKey) === id) this.newKeys.delete(snapshot.idempotencyKey);
      const live = this.tasks.get(id);
      if (live === undefined) continue;
      this.pending.stored(id, snapshot.version);
      if (!this.pending.isDirty(id) && !this.heldHere(live)) this.forget(live);
    }
    const verdicts = new Map<string, { short: boolean; nextAtMs: number | undefined }>();
    const reoffer = new Set<SessionState>();
    flight.batch.claims.forEach((group, g) => {
      for (const slot of group.slots) {
        const session = this.sessions.get(slot.sessionId);
        if (session === undefined) continue;
        session.claimPending -= 1;
        reoffer.add(session);
      }
      const claimed = outcome.claimed[g] ?? [];
      for (const { task, slot } of claimed) {
        durable.push({ ...task });
        this.adoptClaimed(task, group.slots[slot]?.sessionId ?? '', now);
      }
      const short = claimed.length < group.slots.length;
      const previous = verdicts.get(group.queue) ?? { short: true, nextAtMs: undefined };
      const next = outcome.nextClaimAtMs[g];
      verdicts.set(group.queue, {
        short: previous.short && short,
        nextAtMs: next === undefined ? previous.nextAtMs : Math.min(previous.nextAtMs ?? Infinity, next),
      });
    });
    for (const [queue, { short, nextAtMs }] of verdicts) this.backlog.claimed(queue, short, nextAtMs);
    for (const session of reoffer) this.offerSession(session);
    return durable;
  }

  /**
   * Nothing of the commit may have been written. New tasks are dropped (their
   * submits were told it failed; a retry with the same key finds one if the
   * commit did land after all); tasks taken in from a sweep are dropped too
   * (the next sweep finds them again); other changes are written again by the
   * next commit; claims are given up. Returns the tasks it dropped: the
   * events told about them (task-events.ts) were never durable and must not
   * reach observers.
   */
  commitFailed(): ReadonlySet<string> {
    const flight = this.pending.end();
    const dropped = new Set<string>();
    for (const [id, snapshot] of flight.snapshots) {
      const live = this.tasks.get(id);
      if (live === undefined) continue;
      if (flight.inserted.has(id) || flight.swept.has(id)) {
        if (snapshot.idempotencyKey !== '' && this.newKeys.get(snapshot.idempotencyKey) === id) this.newKeys.delete(snapshot.idempotencyKey);
        this.dropLocal(live);
        dropped.add(id);
        continue;
      }
      this.markDirty(live, flight.requeues.get(id) ?? 'none');
    }
    for (const group of flight.batch.claims) {
      for (const slot of group.slots) {
        const session = this.sessions.get(slot.sessionId);
        if (session !== undefined) session.claimPending -= 1;
      }
      this.backlog.failed(group.queue);
    }
    if (dropped.size > 0) this.effects.events = withoutTasks(this.effects.events, dropped);
    return dropped;
  }

  takeEffects(): Effects {
    const out = this.effects;
    this.effects = newEffects();
    return out;
  }

  /** The heartbeat interval in force, averaged over the open sessions of each worker zone. */
  keepaliveIntervals(): { zone: string; meanMs: number; sessions: number }[] {
    const sums = new Map<string, { total: number; n: number }>();
    for (const session of this.sessions.values()) {
      const sum = sums.get(session.zone) ?? { total: 0, n: 0 };
      sum.total += session.intervalMs;
      sum.n += 1;
      sums.set(session.zone, sum);
    }
    return [...sums].map(([zone, { total, n }]) => ({ zone, meanMs: total / n, sessions: n }));
  }

  /** Counts for health pages and tests. */
  stats(): { tasksInMemory: number; sessions: number; heldTasks: number } {
    let heldTasks = 0;
    for (const session of this.sessions.values()) heldTasks += session.holds.size;
    return { tasksInMemory: this.tasks.size, sessions: this.sessions.size, heldTasks };
  }

  // ---------------------------------------------------------------- internals

  /**
   * The one place a task's state changes. Refuses a transition the table in
   * task-state.ts does not allow: that would be a bug in the core, never a
   * worker's doing (the update rules answer those first).
   */
  private transition(task: TaskRecord, to: TaskState): void {
    if (!canTransition(task.state, to)) {
      throw new Error(`illegal transition ${task.state} -> ${to} for task ${task.id}`);
    }
    task.state = to;
  }

  private markDirty(task: TaskRecord, requeue: StateWrite['requeue']): void {
    this.pending.markDirty(task.id, requeue);
  }

  /** Held by one of this engine's sessions (as opposed to: written and then no longer ours to keep). */
  private heldHere(task: TaskRecord): boolean {
    return (task.state === 'ASSIGNED' || task.state === 'RUNNING') && task.owner === this.identity.owner;
  }

  /** A task leaves memory: it is durable and no longer held here. */
  private forget(task: TaskRecord): void {
    this.tasks.delete(task.id);
    this.pending.forget(task.id);
    if (isTerminal(task.state)) this.finished.set(task.id, { id: task.id, state: task.state, version: task.version, attempt: task.attempt, sessionId: '' });
  }

  /** Drops a task that never became durable (or was taken in from a sweep): its hold goes, nothing is remembered. */
  private dropLocal(task: TaskRecord): void {
    if (task.sessionId !== '') {
      const session = this.sessions.get(task.sessionId);
      if (session !== undefined && session.holds.delete(holdKey(task.id, task.attempt))) this.afterRelease(session);
    }
    this.tasks.delete(task.id);
    this.pending.forget(task.id);
  }

  private dropDuplicate(taskId: string, existingId: string): void {
    this.duplicateOf.set(taskId, existingId);
    const task = this.tasks.get(taskId);
    if (task === undefined) return;
    if (task.idempotencyKey !== '' && this.newKeys.get(task.idempotencyKey) === taskId) this.newKeys.delete(task.idempotencyKey);
    this.dropLocal(task);
  }

  private claimDue(now: number): boolean {
    for (const [queue, ring] of this.rings) {
      if (this.backlog.claimDue(queue, now) && ring.pick('', false) !== undefined) return true;
    }
    return false;
  }

  private *queuesWithSessions(): Iterable<string> {
    for (const [queue, ring] of this.rings) if (ring.size > 0) yield queue;
  }

  /** Claim groups for the free slots of every queue whose store may hold ready tasks; each session's slots go to one queue per round. */
  private planClaims(now: number): ClaimGroup[] {
    const queues = [...this.rings.keys()];
    if (queues.length === 0) return [];
    const groups: ClaimGroup[] = [];
    const start = this.claimRound++ % queues.length;
    for (let i = 0; i < queues.length; i++) {
      const queue = queues[(start + i) % queues.length]!;
      if (!this.backlog.claimDue(queue, now)) continue;
      const planned = planQueueClaims(queue, this.rings.get(queue)!.withCredit(), (s) => s.credit);
      if (planned.length === 0) continue;
      let slots = 0;
      for (const group of planned) {
        for (const slot of group.slots) this.sessions.get(slot.sessionId)!.claimPending += 1;
        slots += group.slots.length;
      }
      this.backlog.planned(queue, slots, now);
      groups.push(...planned);
    }
    return groups;
  }

  /** A task a claim returned, ASSIGNED to this dispatcher for `sessionId`: held by that session, or given back if it ended. */
  private adoptClaimed(claimed: TaskRecord, sessionId: string, now: number): void {
    const task = { ...claimed };
    this.tasks.set(task.id, task);
    this.pending.stored(task.id, task.version);
    const session = this.sessions.get(sessionId);
    if (session === undefined || session.lifecycle !== 'OPEN' || session.slots <= session.holds.size) {
      this.giveBack(task, now);
      return;
    }
    this.hold(task, session, now);
    this.rings.get(task.queue)?.served(session);
  }

  /**
   * Gives back a claimed task no worker saw (its session ended while the
   * claim was in flight, or the store says we hold it and we do not know
   * it): PENDING again in its place, the attempt unchanged.
   */
  private giveBack(task: TaskRecord, now: number): void {
    this.transition(task, 'PENDING');
    task.owner = '';
    task.dispatcherZone = '';
    task.leaseExpiresMs = 0;
    task.sessionId = '';
    task.workerId = '';
    task.workerZone = '';
    task.attemptDeadlineMs = 0;
    task.progressPermille = 0;
    task.version += 1;
    task.updatedMs = now;
    this.markDirty(task, 'keep');
    this.backlog.released(task.queue, task.readyAtMs, now);
  }

  /**
   * A PENDING task goes to a session of its zone with a free slot now, when
   * it is ready and no older task of its queue may be waiting in the store;
   * otherwise it waits in the store (written PENDING) for a claim.
   */
  private place(task: TaskRecord, now: number, requeue: StateWrite['requeue']): void {
    const ring = this.rings.get(task.queue);
    if (task.readyAtMs <= now && ring !== undefined && this.backlog.mayAssignAtOnce(task.queue, now)) {
      const zone = task.preferredZone;
      const anyZone = zone === '' || this.options.zoneSpilloverDelayMs === 0;
      const session = ring.pick(zone, !anyZone);
      if (session !== undefined) {
        this.assign(task, session, now);
        ring.served(session);
        return;
      }
    }
    this.markDirty(task, requeue);
    this.backlog.released(task.queue, task.readyAtMs, now);
  }

  private offerSession(session: SessionState): void {
    if (session.credit <= 0) return;
    for (const name of session.queues) this.ring(name).offer(session);
  }

  private ring(queue: string): SessionRing {
    let ring = this.rings.get(queue);
    if (ring === undefined) {
      ring = new SessionRing(queue);
      this.rings.set(queue, ring);
    }
    return ring;
  }

  private forgetSession(session: SessionState): void {
    for (const name of session.queues) this.rings.get(name)?.forget(session.id);
  }

  private assign(task: TaskRecord, session: SessionState, now: number): void {
    this.transition(task, 'ASSIGNED');
    task.owner = this.identity.owner;
    task.dispatcherZone = this.identity.zone;
    task.leaseExpiresMs = now + this.options.taskLeaseMs;
    task.sessionId = session.id;
    task.workerId = session.workerId;
    task.workerZone = session.zone;
    task.attemptDeadlineMs = now + task.attemptTimeoutMs;
    task.progressPermille = 0;
    task.version += 1;
    task.updatedMs = now;
    this.markDirty(task, 'none');
    this.hold(task, session, now);
  }

  /** The session holds the task's current attempt: a hold, its deadline, and the assignment to send. */
  private hold(task: TaskRecord, session: SessionState, now: number): void {
    session.holds.set(holdKey(task.id, task.attempt), { taskId: task.id, attempt: task.attempt, orphan: false, assignedVersion: task.version, assignedMs: now, acknowledged: false });
    this.deadlines.push({ atMs: task.attemptDeadlineMs, kind: 'attempt', taskId: task.id, attempt: task.attempt });
    pushTo(this.effects.assignments, session.id, { task, attempt: task.attempt, version: task.version, deadlineMs: task.attemptDeadlineMs });
    this.effects.events.push(this.taskEvent('assigned', task, {}));
  }

  private timeoutAttempt(task: TaskRecord): void {
    const session = this.sessions.get(task.sessionId);
    const hold = session?.holds.get(holdKey(task.id, task.attempt));
    if (session !== undefined && hold !== undefined) {
      hold.orphan = true;
      hold.orphanReason = 'ATTEMPT_TIMEOUT';
      pushTo(this.effects.cancels, session.id, { taskId: task.id, attempt: task.attempt, reason: 'ATTEMPT_TIMEOUT' });
    }
    this.retry(task, 'ATTEMPT_TIMEOUT', `attempt ${task.attempt} exceeded attempt_timeout_ms=${task.attemptTimeoutMs}`, true);
  }

  /**
   * Ends the current attempt and schedules the next one (placed at once, or
   * written PENDING behind its priority's waiting tasks), or fails the task
   * when attempts are exhausted (retry-rule.ts).
   */
  private retry(task: TaskRecord, reason: Reason, message: string, withBackoff: boolean, error?: ErrorInfo): void {
    const now = this.nowMs;
    const decision = decideRetry(task, error ?? errorInfo(reason, message), withBackoff, now, this.options.backoff, this.random);
    if (decision.kind === 'fail') {
      this.finish(task, 'FAILED', decision.error, null);
      return;
    }
    this.effects.events.push(this.taskEvent('retried', task, { reason: error?.reason ?? reason }));
    this.transition(task, 'PENDING');
    task.attempt = decision.attempt;
    task.version += 1;
    task.owner = '';
    task.leaseExpiresMs = 0;
    task.sessionId = '';
    task.attemptDeadlineMs = 0;
    task.error = decision.error;
    task.updatedMs = now;
    task.notBeforeMs = decision.notBeforeMs;
    task.readyAtMs = Math.max(decision.notBeforeMs, now);
    task.startDeadlineMs = task.scheduleToStartTimeoutMs > 0 ? task.readyAtMs + task.scheduleToStartTimeoutMs : 0;
    this.markDirty(task, 'back');
    this.place(task, now, 'back');
  }

  /**
   * Moves a task to a terminal state. A change the dispatcher makes bumps the
   * version; a worker's update already carried its own (`bumpVersion` false).
   */
  private finish(
    task: TaskRecord,
    state: 'COMPLETED' | 'FAILED' | 'CANCELLED',
    error: ErrorInfo | null,
    result: Uint8Array | null,
    bumpVersion = true,
  ): void {
    this.transition(task, state);
    if (bumpVersion) task.version += 1;
    task.error = error;
    task.result = result;
    task.owner = '';
    task.leaseExpiresMs = 0;
    task.sessionId = '';
    task.attemptDeadlineMs = 0;
    task.updatedMs = this.nowMs;
    this.markDirty(task, 'none');
    this.effects.events.push(this.taskEvent('finished', task, { outcome: state, reason: error?.reason ?? '' }));
  }

  /** An event about `task` as it is now. */
  private taskEvent<K extends TaskEvent['kind']>(kind: K, task: TaskRecord, extra: Parameters<typeof taskEvent<K>>[3]): TaskEvent {
    return taskEvent(kind, task, this.nowMs, extra);
  }

  private refused(workerZone: string, reason: string): void {
    this.effects.events.push({ kind: 'updateRefused', reason, dispatcherZone: this.identity.zone, workerZone, atMs: this.nowMs });
  }

  private afterRelease(session: SessionState): void {
    if (session.lifecycle === 'DRAINING' && session.holds.size === 0) {
      this.closeSession(session, 'DRAINED');
      return;
    }
    this.offerSession(session);
  }
}

/** The events that are not about any of `tasks`. */
export function withoutTasks(events: EngineEvent[], tasks: ReadonlySet<string>): EngineEvent[] {
  return events.filter((e) => !('taskId' in e) || !tasks.has(e.taskId));
}

function accepted(update: WorkerUpdate, task: TaskRecord): UpdateAckOut {
  return { sequenceId: update.sequenceId, taskId: task.id, result: 'ACCEPTED', reason: '', message: '', state: task.state, version: task.version };
}

/** A stable number in [0, 1) from a string (FNV-1a). */
function unitHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 0x1_0000_0000;
}
