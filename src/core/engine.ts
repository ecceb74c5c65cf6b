import { errorInfo, type ErrorInfo, type Reason } from '../errors';
import { backoffDelayMs } from './backoff';
import type { Clock, Random } from './clock';
import { DispatchQueue, type ReadyEntry } from './dispatch-queue';
import { MinHeap } from './min-heap';
import type { CoreOptions } from './options';
import { holdKey, SessionState, type CloseCause, type HelloSpec } from './session';
import type { TaskRecord, TaskSpec } from './task';
import { canTransition, isTerminal, type TaskState } from './task-state';
import { decideKeepalive, keepaliveCapMs, shouldReannounce } from './keepalive-policy';
import { decideUpdate } from './update-rules';
import type { UpdateAckOut, WorkerUpdate } from './update';

/** What the dispatcher must tell a worker about a new attempt. */
export interface AssignmentOut {
  task: TaskRecord;
  attempt: number;
  version: number;
  deadlineMs: number;
}

export interface CancelOut {
  taskId: string;
  attempt: number;
  reason: string;
}

/** Side effects the adapter carries out after the next durable commit. */
export interface Effects {
  assignments: Map<string, AssignmentOut[]>;
  cancels: Map<string, CancelOut[]>;
  /** Sessions the core ended (idle, drained); the adapter ends their streams. */
  closed: { sessionId: string; cause: CloseCause }[];
  /** Sessions asked to move: the adapter sends GoAway; the session is already draining. */
  goAways: { sessionId: string; reason: MoveReason; drainDeadlineMs: number }[];
  /** Explicit heartbeats to send on idle streams. */
  pings: { sessionId: string; nonce: number; sentMs: number }[];
  /** New heartbeat interval / idle timeout to tell a worker (moved by more than 20 %). */
  keepaliveUpdates: { sessionId: string; intervalMs: number; idleTimeoutMs: number }[];
}

/** Why a session is asked to reconnect elsewhere. */
export type MoveReason = 'ZONE_REBALANCE' | 'MAX_SESSION_AGE';

/** How many finished tasks are remembered after they leave memory. */
const FINISHED_REMEMBERED = 10_000;

export interface FinishedTask {
  id: string;
  state: TaskState;
  version: number;
  attempt: number;
  sessionId: '';
}

type Deadline =
  | { atMs: number; kind: 'ready' | 'start'; task: TaskRecord; version: number }
  | { atMs: number; kind: 'attempt'; task: TaskRecord; attempt: number }
  | { atMs: number; kind: 'spill'; queue: DispatchQueue; entry: ReadyEntry; holdGeneration: number }
  | { atMs: number; kind: 'idle' | 'drain' | 'maxAge'; session: SessionState }
  /** `generation` must match the session's: a rescheduled heartbeat retires the older deadline. */
  | { atMs: number; kind: 'heartbeat'; session: SessionState; generation: number };

export interface CancelOutcome {
  state: TaskState;
  cancelled: boolean;
}

/**
 * The dispatch core: every task and session rule, with no I/O and no timers.
 *
 * The adapter feeds it events (submits, worker messages, stream ends, the
 * passing of time through `tick`), persists `takeDirty()` in one commit, and
 * only then performs `takeEffects()` and answers the callers. Time comes from
 * the injected clock; `nextWakeAtMs()` says when `tick` is next needed.
 *
 * Invariant: a task in ASSIGNED or RUNNING has exactly one non-orphan hold,
 * in the session named by its `sessionId`, for its current attempt.
 */
export class Engine {
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly byIdempotencyKey = new Map<string, TaskRecord>();
  private readonly sessions = new Map<string, SessionState>();
  private readonly queues = new Map<string, DispatchQueue>();
  private readonly deadlines = new MinHeap<Deadline>((a, b) => a.atMs < b.atMs);
  private readonly dirty = new Map<string, TaskRecord>();
  /** Finished tasks that left memory, newest last, so late updates still get TERMINAL with the final state. */
  private readonly finished = new Map<string, FinishedTask>();
  private readonly touchedQueues = new Set<DispatchQueue>();
  private effects: Effects = newEffects();
  private nextSeq = 1;
  private pingCounter = 0;

  constructor(
    private options: CoreOptions,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly newId: () => string,
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
   * session; a changed zone spillover delay re-judges every held task.
   * Retry, backoff and timeout defaults apply to the next submit or retry,
   * the drain grace to the next drain, the session age to new sessions.
   */
  setOptions(next: CoreOptions): void {
    const previous = this.options;
    this.options = next;
    for (const session of this.sessions.values()) {
      if (session.lifecycle === 'CLOSED') continue;
      this.applySlotLimit(session);
      if (next.keepalive !== previous.keepalive) this.applyKeepalive(session, true);
    }
    if (next.zoneSpilloverDelayMs !== previous.zoneSpilloverDelayMs) {
      for (const queue of this.queues.values()) {
        queue.releaseAll();
        this.touchedQueues.add(queue);
      }
    }
  }

  // ---------------------------------------------------------------- recovery

  /**
   * Loads the unfinished tasks of a previous run. Tasks that were ASSIGNED or
   * RUNNING belonged to sessions that no longer exist: they lose their lease
   * and are retried at once (or fail once attempts are exhausted).
   */
  recover(records: TaskRecord[]): void {
    const now = this.nowMs;
    const sorted = [...records].sort((a, b) => a.seq - b.seq);
    for (const record of sorted) {
      this.nextSeq = Math.max(this.nextSeq, record.seq + 1);
    }
    for (const record of sorted) {
      if (isTerminal(record.state)) continue;
      const task: TaskRecord = { ...record };
      this.tasks.set(task.id, task);
      if (task.idempotencyKey !== '') this.byIdempotencyKey.set(task.idempotencyKey, task);
      if (task.state === 'PENDING') {
        this.enqueuePending(task, now);
      } else {
        this.retry(task, 'LEASE_LOST', `the dispatcher restarted while session ${task.sessionId} held attempt ${task.attempt}`, false);
      }
    }
  }

  // ---------------------------------------------------------------- producers

  /** A task created by this process and not yet evicted, looked up by idempotency key. */
  findByIdempotencyKey(key: string): TaskRecord | undefined {
    return this.byIdempotencyKey.get(key);
  }

  submit(spec: TaskSpec): TaskRecord {
    const now = this.nowMs;
    const task: TaskRecord = {
      id: this.newId(),
      queue: spec.queue,
      priority: spec.priority,
      payload: spec.payload,
      contentType: spec.contentType,
      labels: spec.labels,
      preferredZone: spec.preferredZone,
      idempotencyKey: spec.idempotencyKey,
      state: 'PENDING',
      attempt: 1,
      maxAttempts: spec.maxAttempts,
      version: 1,
      attemptTimeoutMs: spec.attemptTimeoutMs,
      scheduleToStartTimeoutMs: spec.scheduleToStartTimeoutMs,
      notBeforeMs: spec.notBeforeMs,
      createdMs: now,
      updatedMs: now,
      sessionId: '',
      workerId: '',
      attemptDeadlineMs: 0,
      progressPermille: 0,
      result: null,
      error: null,
      seq: 0,
    };
    this.tasks.set(task.id, task);
    if (task.idempotencyKey !== '') this.byIdempotencyKey.set(task.idempotencyKey, task);
    this.enqueuePending(task, now);
    return task;
  }

  /** Summary of a recently finished task that already left memory. */
  finishedTask(taskId: string): FinishedTask | undefined {
    return this.finished.get(taskId);
  }

  /** The in-memory view of a task (unfinished, or finished and not yet evicted). */
  getTask(taskId: string): TaskRecord | undefined {
    return this.tasks.get(taskId);
  }

  /** Cancels a task held in memory; `undefined` means the caller must ask the store. */
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
        pushTo(this.effects.cancels, session.id, { taskId: task.id, attempt: task.attempt, reason: 'CANCELLED' });
      }
    }
    this.finish(task, 'CANCELLED', errorInfo('CANCELLED', message), null);
    return { state: 'CANCELLED', cancelled: true };
  }

  // ---------------------------------------------------------------- sessions

  openSession(hello: HelloSpec): SessionState {
    const now = this.nowMs;
    const session = new SessionState(this.newId(), hello, now, this.options.sequenceWindow);
    session.slots = Math.min(hello.slots, this.options.maxSlotsPerSession);
    this.sessions.set(session.id, session);
    this.applyKeepalive(session);
    session.announcedIntervalMs = session.intervalMs;
    this.deadlines.push({ atMs: now + session.idleTimeoutMs, kind: 'idle', session });
    this.deadlines.push({ atMs: now + session.intervalMs, kind: 'heartbeat', session, generation: session.heartbeatGeneration });
    if (this.options.maxSessionAgeMs > 0) {
      // Jitter so sessions opened together do not all move together; drawn
      // from the session id so the injected random stays for backoff alone.
      const ageMs = this.options.maxSessionAgeMs * (1 - 0.1 * unitHash(session.id));
      this.deadlines.push({ atMs: now + Math.max(ageMs, this.options.minSessionAgeToMoveMs), kind: 'maxAge', session });
    }
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
    session.rtt.sample(this.nowMs - ping.sentMs);
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
    this.deadlines.push({ atMs: session.drainDeadlineMs, kind: 'drain', session });
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

  /**
   * Recomputes a session's interval and idle timeout from its RTT and the
   * number of sessions (the budget), and tells the worker when the interval
   * moved by more than 20 % since it was last told.
   */
  private applyKeepalive(session: SessionState, announceAnyChange = false): void {
    const decision = decideKeepalive(this.options.keepalive, session.rtt, this.sessions.size);
    if (session.idleTimeoutMs > 0 && decision.idleTimeoutMs < session.idleTimeoutMs) {
      const now = this.nowMs;
      session.idleNotBeforeMs = Math.max(session.idleNotBeforeMs, Math.min(session.lastInboundMs + session.idleTimeoutMs, now + decision.idleTimeoutMs));
    }
    const changed = decision.intervalMs !== session.intervalMs || decision.idleTimeoutMs !== session.idleTimeoutMs;
    session.intervalMs = decision.intervalMs;
    session.idleTimeoutMs = decision.idleTimeoutMs;
    if (announceAnyChange && changed) {
      // A new configuration: the next heartbeat follows the new interval at once.
      session.heartbeatGeneration += 1;
      const atMs = Math.max(this.nowMs + 1, Math.min(this.nowMs + decision.intervalMs, session.lastOutboundMs + decision.intervalMs));
      this.deadlines.push({ atMs, kind: 'heartbeat', session, generation: session.heartbeatGeneration });
    }
    const reannounce = shouldReannounce(session.announcedIntervalMs, decision.intervalMs) || (announceAnyChange && changed);
    if (session.announcedIntervalMs > 0 && reannounce) {
      session.announcedIntervalMs = decision.intervalMs;
      this.effects.keepaliveUpdates.push({ sessionId: session.id, intervalMs: decision.intervalMs, idleTimeoutMs: decision.idleTimeoutMs });
    }
  }

  /**
   * One heartbeat tick of a session: a worker that does not answer its
   * heartbeat, or does not acknowledge an assignment, within the idle timeout
   * has stopped reading (stalled) even if it keeps sending; an idle stream
   * gets an explicit heartbeat; a busy one does not.
   */
  private heartbeat(session: SessionState, now: number): void {
    this.applyKeepalive(session);
    // Silence is death, not a stall: the idle rule answers (same instant as the idle deadline).
    const judged = now >= session.idleNotBeforeMs;
    if (judged && now - session.lastInboundMs >= session.idleTimeoutMs) {
      this.closeSession(session, 'IDLE');
      return;
    }
    const ping = session.outstandingPing;
    const stalledPing = judged && ping !== undefined && now - ping.sentMs >= session.idleTimeoutMs;
    let stalledAssignment = false;
    for (const hold of session.holds.values()) {
      if (judged && !hold.acknowledged && !hold.orphan && now - hold.assignedMs >= session.idleTimeoutMs) stalledAssignment = true;
    }
    if (stalledPing || stalledAssignment) {
      this.closeSession(session, 'STALLED');
      return;
    }
    if (ping === undefined && now - session.lastOutboundMs >= session.intervalMs) {
      const sent = { nonce: ++this.pingCounter, sentMs: now };
      session.outstandingPing = sent;
      session.pingsSent += 1;
      session.lastOutboundMs = now;
      this.effects.pings.push({ sessionId: session.id, ...sent });
    }
    const pending = session.outstandingPing;
    const nextMs =
      pending !== undefined
        ? Math.min(pending.sentMs + session.idleTimeoutMs, now + session.intervalMs)
        : Math.max(now + 1, session.lastOutboundMs + session.intervalMs);
    this.deadlines.push({ atMs: nextMs, kind: 'heartbeat', session, generation: session.heartbeatGeneration });
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
  }

  // ---------------------------------------------------------------- updates

  applyUpdate(session: SessionState, update: WorkerUpdate): UpdateAckOut {
    // Any update about a held attempt proves the worker read its assignment.
    const held = session.holds.get(holdKey(update.taskId, update.attempt));
    if (held !== undefined) held.acknowledged = true;
    const decision = decideUpdate(this, session, update);
    if (decision.kind === 'answer') {
      if (decision.record) session.sequence.record(update, decision.ack);
      return decision.ack;
    }
    const { task, hold } = decision;
    const status = update.status;
    task.progressPermille = update.progressPermille;
    task.version = update.version;
    task.updatedMs = this.nowMs;
    let ack: UpdateAckOut;
    if (status === 'RUNNING') {
      this.transition(task, 'RUNNING');
      this.markDirty(task);
      ack = accepted(update, task);
      hold.lastAccepted = { update, ack };
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
      session.rememberFinished(task.id, update, ack);
      this.afterRelease(session);
    }
    session.sequence.record(update, ack);
    return ack;
  }

  /** Releases an orphan hold once its worker reports the attempt over (see update-rules). */
  releaseOrphan(session: SessionState, taskId: string, attempt: number): void {
    if (session.holds.delete(holdKey(taskId, attempt))) this.afterRelease(session);
  }

  // ---------------------------------------------------------------- time

  /** Earliest instant at which `tick` has work, or undefined. */
  nextWakeAtMs(): number | undefined {
    return this.deadlines.peek()?.atMs;
  }

  /** Handles every deadline that has passed: delayed starts, timeouts, idle sessions, drain grace. */
  tick(): void {
    const now = this.nowMs;
    for (;;) {
      const top = this.deadlines.peek();
      if (top === undefined || top.atMs > now) return;
      this.deadlines.pop();
      switch (top.kind) {
        case 'ready':
          if (top.task.state === 'PENDING' && top.task.version === top.version) this.makeReady(top.task);
          break;
        case 'start':
          if (top.task.state === 'PENDING' && top.task.version === top.version) {
            this.finish(
              top.task,
              'FAILED',
              errorInfo(
                'SCHEDULE_TO_START_TIMEOUT',
                `no worker started the task within schedule_to_start_timeout_ms=${top.task.scheduleToStartTimeoutMs}; check that workers serve queue "${top.task.queue}" and have free slots`,
              ),
              null,
            );
          }
          break;
        case 'attempt':
          if ((top.task.state === 'ASSIGNED' || top.task.state === 'RUNNING') && top.task.attempt === top.attempt) {
            this.timeoutAttempt(top.task);
          }
          break;
        case 'idle': {
          const session = top.session;
          if (session.lifecycle === 'CLOSED') break;
          const expiresMs = Math.max(session.lastInboundMs + session.idleTimeoutMs, session.idleNotBeforeMs);
          if (expiresMs <= now) this.closeSession(session, 'IDLE');
          else this.deadlines.push({ atMs: expiresMs, kind: 'idle', session });
          break;
        }
        case 'drain':
          if (top.session.lifecycle === 'DRAINING') this.closeSession(top.session, 'DRAIN_EXPIRED');
          break;
        case 'maxAge':
          if (top.session.lifecycle === 'OPEN') this.moveSession(top.session, 'MAX_SESSION_AGE');
          break;
        case 'spill':
          if (top.entry.held && top.entry.holdGeneration === top.holdGeneration) {
            top.queue.release(top.entry);
            this.touchedQueues.add(top.queue);
          }
          break;
        case 'heartbeat':
          if (top.session.lifecycle !== 'CLOSED' && top.generation === top.session.heartbeatGeneration) this.heartbeat(top.session, now);
          break;
      }
    }
  }

  // ---------------------------------------------------------------- dispatch

  /**
   * Assigns ready tasks to sessions with free slots: round-robin, priority
   * first, FIFO within a priority, a session of the task's preferred zone
   * first. A task that prefers a zone with no free session waits (held) up
   * to zoneSpilloverDelayMs from when it became ready for one, and only
   * then goes to any zone; tasks behind it are not held up meanwhile.
   */
  dispatch(): void {
    const now = this.nowMs;
    const delayMs = this.options.zoneSpilloverDelayMs;
    for (const queue of this.touchedQueues) {
      for (const zone of [...queue.heldZones()]) {
        for (;;) {
          const entry = queue.peekHeld(zone);
          if (entry === undefined) break;
          const session = queue.pickSession(zone, true);
          if (session === undefined) break;
          queue.popHeld(zone);
          this.assign(entry.task, session, now);
          queue.served(session);
        }
      }
      for (;;) {
        const entry = queue.peekReady();
        if (entry === undefined) break;
        const zone = entry.task.preferredZone;
        const mayTakeAnyZone = zone === '' || delayMs === 0 || now >= entry.readyAtMs + delayMs;
        const session = queue.pickSession(zone, !mayTakeAnyZone);
        if (session === undefined) {
          // Hold it for its zone only while some other session could have taken it.
          if (mayTakeAnyZone || queue.pickSession('') === undefined) break;
          const held = queue.holdTop(zone);
          if (held !== undefined) this.deadlines.push({ atMs: held.readyAtMs + delayMs, kind: 'spill', queue, entry: held, holdGeneration: held.holdGeneration });
          continue;
        }
        queue.popReady();
        this.assign(entry.task, session, now);
        queue.served(session);
      }
    }
    this.touchedQueues.clear();
  }

  // ---------------------------------------------------------------- persistence hand-off

  /** Snapshots of every task changed since the last call, for one durable commit. */
  takeDirty(): TaskRecord[] {
    if (this.dirty.size === 0) return [];
    const out: TaskRecord[] = [];
    for (const task of this.dirty.values()) out.push({ ...task });
    this.dirty.clear();
    return out;
  }

  /** Puts snapshots back after a failed commit, unless the task moved on meanwhile. */
  restoreDirty(records: TaskRecord[]): void {
    for (const record of records) {
      const live = this.tasks.get(record.id);
      if (live !== undefined) this.dirty.set(live.id, live);
    }
  }

  /** Finished tasks whose final state is durable leave memory. */
  committed(records: TaskRecord[]): void {
    for (const record of records) {
      const live = this.tasks.get(record.id);
      if (live === undefined || !isTerminal(live.state) || live.version !== record.version) continue;
      this.tasks.delete(live.id);
      this.finished.set(live.id, { id: live.id, state: live.state, version: live.version, attempt: live.attempt, sessionId: '' });
      if (this.finished.size > FINISHED_REMEMBERED) {
        const oldest = this.finished.keys().next().value;
        if (oldest !== undefined) this.finished.delete(oldest);
      }
      if (live.idempotencyKey !== '' && this.byIdempotencyKey.get(live.idempotencyKey) === live) {
        this.byIdempotencyKey.delete(live.idempotencyKey);
      }
    }
  }

  takeEffects(): Effects {
    const out = this.effects;
    this.effects = newEffects();
    return out;
  }

  get hasDirty(): boolean {
    return this.dirty.size > 0;
  }

  /** Counts for health pages and tests. */
  stats(): { tasksInMemory: number; sessions: number; ready: number } {
    let ready = 0;
    for (const queue of this.queues.values()) ready += queue.readyCount;
    return { tasksInMemory: this.tasks.size, sessions: this.sessions.size, ready };
  }

  // ---------------------------------------------------------------- internals

  private queue(name: string): DispatchQueue {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = new DispatchQueue(name);
      this.queues.set(name, queue);
    }
    return queue;
  }

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

  private markDirty(task: TaskRecord): void {
    this.dirty.set(task.id, task);
  }

  private enqueuePending(task: TaskRecord, now: number): void {
    task.seq = this.nextSeq++;
    this.markDirty(task);
    const readyAtMs = Math.max(task.notBeforeMs, now);
    if (task.scheduleToStartTimeoutMs > 0) {
      this.deadlines.push({ atMs: readyAtMs + task.scheduleToStartTimeoutMs, kind: 'start', task, version: task.version });
    }
    if (readyAtMs > now) this.deadlines.push({ atMs: readyAtMs, kind: 'ready', task, version: task.version });
    else this.makeReady(task);
  }

  private makeReady(task: TaskRecord): void {
    const queue = this.queue(task.queue);
    queue.pushReady(task, this.nowMs);
    this.touchedQueues.add(queue);
  }

  private offerSession(session: SessionState): void {
    if (session.credit <= 0) return;
    for (const name of session.queues) {
      const queue = this.queue(name);
      queue.offer(session);
      this.touchedQueues.add(queue);
    }
  }

  private forgetSession(session: SessionState): void {
    for (const name of session.queues) this.queues.get(name)?.forget(session.id);
  }

  private assign(task: TaskRecord, session: SessionState, now: number): void {
    this.transition(task, 'ASSIGNED');
    task.sessionId = session.id;
    task.workerId = session.workerId;
    task.attemptDeadlineMs = now + task.attemptTimeoutMs;
    task.progressPermille = 0;
    task.version += 1;
    task.updatedMs = now;
    this.markDirty(task);
    session.holds.set(holdKey(task.id, task.attempt), { taskId: task.id, attempt: task.attempt, orphan: false, assignedVersion: task.version, assignedMs: now, acknowledged: false });
    this.deadlines.push({ atMs: task.attemptDeadlineMs, kind: 'attempt', task, attempt: task.attempt });
    pushTo(this.effects.assignments, session.id, {
      task,
      attempt: task.attempt,
      version: task.version,
      deadlineMs: task.attemptDeadlineMs,
    });
  }

  private timeoutAttempt(task: TaskRecord): void {
    const session = this.sessions.get(task.sessionId);
    const hold = session?.holds.get(holdKey(task.id, task.attempt));
    if (session !== undefined && hold !== undefined) {
      hold.orphan = true;
      pushTo(this.effects.cancels, session.id, { taskId: task.id, attempt: task.attempt, reason: 'ATTEMPT_TIMEOUT' });
    }
    this.retry(
      task,
      'ATTEMPT_TIMEOUT',
      `attempt ${task.attempt} exceeded attempt_timeout_ms=${task.attemptTimeoutMs}`,
      true,
    );
  }

  /**
   * Ends the current attempt and schedules the next one with a fresh deadline
   * (assigned later), or fails the task when attempts are exhausted.
   */
  private retry(task: TaskRecord, reason: Reason, message: string, withBackoff: boolean, error?: ErrorInfo): void {
    const cause = error ?? errorInfo(reason, message);
    if (task.attempt >= task.maxAttempts) {
      this.finish(task, 'FAILED', { ...cause, message: `${cause.message} (gave up after ${task.attempt} of ${task.maxAttempts} attempts)` }, null);
      return;
    }
    const now = this.nowMs;
    this.transition(task, 'PENDING');
    task.attempt += 1;
    task.version += 1;
    task.sessionId = '';
    task.attemptDeadlineMs = 0;
    task.error = cause;
    task.updatedMs = now;
    task.notBeforeMs = withBackoff ? now + backoffDelayMs(this.options.backoff, task.attempt - 1, this.random) : now;
    this.enqueuePending(task, now);
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
    task.sessionId = '';
    task.attemptDeadlineMs = 0;
    task.updatedMs = this.nowMs;
    this.markDirty(task);
  }

  private afterRelease(session: SessionState): void {
    if (session.lifecycle === 'DRAINING' && session.holds.size === 0) {
      this.closeSession(session, 'DRAINED');
      return;
    }
    this.offerSession(session);
  }
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

function newEffects(): Effects {
  return { assignments: new Map(), cancels: new Map(), closed: [], goAways: [], pings: [], keepaliveUpdates: [] };
}

function pushTo<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
