import type * as grpc from '@grpc/grpc-js';
import { RttEstimator } from '../core/rtt-estimator';
import type { Outgoing, WireAssignment, WireDispatcherMessage, WireTaskUpdate, WireUpdateAck, WireWelcome, WireWorkerMessage } from '../protocol/wire';

export interface ConnectionEvents {
  welcome(welcome: WireWelcome): void;
  assignments(assignments: WireAssignment[]): void;
  cancel(taskId: string, attempt: number, reason: string): void;
  acks(acks: WireUpdateAck[]): void;
  /** The dispatcher answered a final update (COMPLETED, FAILED or CANCELLED) of this stream. */
  settled(info: SettledUpdate): void;
  goAway(reason: string, drainDeadlineMs: number): void;
  /**
   * Nothing arrived for `silentMs`, longer than a heartbeat round trip
   * should take (SILENT_AFTER_INTERVALS intervals); called at every check
   * until something arrives or the idle timeout ends the stream.
   */
  silent(silentMs: number): void;
  /** The stream is over, whoever ended it. Called exactly once. */
  closed(error: grpc.ServiceError | undefined): void;
}

type Call = grpc.ClientDuplexStream<Outgoing<WireWorkerMessage>, WireDispatcherMessage>;

/** A final update of an attempt and the dispatcher's answer to it: ACCEPTED means the result counts. */
export interface SettledUpdate {
  taskId: string;
  attempt: number;
  status: 'COMPLETED' | 'FAILED' | 'CANCELLED';
  result: 'ACCEPTED' | 'DUPLICATE' | 'REJECTED';
  reason: string;
}

/** Final updates awaiting their ack, at most (older ones are forgotten). */
const MAX_UNSETTLED = 100_000;

/** A stream silent for this many heartbeat intervals is reported `silent` (the dispatcher answers every ping at once). */
export const SILENT_AFTER_INTERVALS = 2;
/** A stream the dispatcher has not welcomed within this is given up (a dispatcher hung when the stream opened). */
export const WELCOME_TIMEOUT_MS = 10_000;

/**
 * One worker stream, client side: owns the per-stream `sequence_id`, batches
 * updates made in the same turn into one message, sends heartbeats when the
 * stream is otherwise idle, and declares the stream dead when nothing arrives
 * within the idle timeout the dispatcher announced.
 *
 * Invariant: sequence ids on this stream are 1, 2, 3, ... in send order.
 */
export class WorkerConnection {
  private nextSequenceId = 1;
  private queued: Omit<WireTaskUpdate, 'sequenceId'>[] = [];
  private flushScheduled = false;
  private lastSentMs = Date.now();
  private lastReceivedMs = Date.now();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private heartbeatIntervalMs = 0;
  private idleTimeoutMs = 0;
  private pingNonce = 0;
  /** RTT measured from this side's own heartbeats (sent when its outbound is idle). */
  readonly rtt = new RttEstimator();
  private done = false;
  private welcomeTimer: NodeJS.Timeout | undefined;
  /** Final updates sent and not yet acknowledged, by sequence id. */
  private readonly unsettled = new Map<number, Omit<SettledUpdate, 'result' | 'reason'>>();

  constructor(
    private readonly call: Call,
    private readonly events: ConnectionEvents,
  ) {
    call.on('data', (message: WireDispatcherMessage) => this.onMessage(message));
    call.on('error', (error: grpc.ServiceError) => this.finish(error));
    call.on('end', () => this.finish(undefined));
    // The heartbeat timer starts with Welcome; until then only this bounds a stream to a hung dispatcher.
    this.welcomeTimer = setTimeout(() => this.call.cancel(), WELCOME_TIMEOUT_MS);
  }

  /** ip:port of the dispatcher this stream reached (as grpc-js reports it). */
  get peer(): string {
    return this.call.getPeer();
  }

  /** When something last arrived on this stream. */
  get lastReceivedAtMs(): number {
    return this.lastReceivedMs;
  }

  send(message: Outgoing<WireWorkerMessage>): void {
    if (this.done) return;
    this.lastSentMs = Date.now();
    this.call.write(message);
  }

  /** Queues an update; all updates queued in one turn go out in one message, a superseded RUNNING dropped. */
  update(update: Omit<WireTaskUpdate, 'sequenceId'>): void {
    if (this.done) return;
    // A RUNNING (progress) update not sent yet says nothing the next one of the same attempt does not:
    // it goes, and the dispatcher gets one update instead of two (RUNNING then COMPLETED of a quick task).
    const last = this.queued.length > 0 ? this.queued[this.queued.length - 1] : undefined;
    if (last !== undefined && last.status === 'RUNNING' && last.taskId === update.taskId && last.attempt === update.attempt) this.queued.pop();
    this.queued.push(update);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushUpdates());
  }

  /** Half-closes: this side sends nothing more. */
  endWrites(): void {
    this.flushUpdates();
    if (!this.done) this.call.end();
  }

  cancel(): void {
    if (this.done) return;
    this.call.cancel();
  }

  private flushUpdates(): void {
    this.flushScheduled = false;
    if (this.queued.length === 0 || this.done) return;
    const updates = this.queued.map((u) => ({ ...u, sequenceId: this.nextSequenceId++ }));
    this.queued = [];
    for (const u of updates) {
      if (u.status !== 'COMPLETED' && u.status !== 'FAILED' && u.status !== 'CANCELLED') continue;
      this.unsettled.set(u.sequenceId, { taskId: u.taskId, attempt: u.attempt, status: u.status });
      if (this.unsettled.size > MAX_UNSETTLED) this.unsettled.delete(this.unsettled.keys().next().value!);
    }
    this.send({ kind: 'updates', updates: { updates } });
  }

  private onMessage(message: WireDispatcherMessage): void {
    this.lastReceivedMs = Date.now();
    switch (message.kind) {
      case 'welcome':
        clearTimeout(this.welcomeTimer);
        this.startHeartbeats(message.welcome);
        this.events.welcome(message.welcome);
        return;
      case 'assignments':
        this.events.assignments(message.assignments.assignments);
        return;
      case 'acks':
        this.events.acks(message.acks.acks);
        for (const ack of message.acks.acks) {
          const sequenceId = Number(ack.sequenceId);
          const final = this.unsettled.get(sequenceId);
          if (final === undefined) continue;
          this.unsettled.delete(sequenceId);
          if (ack.result !== 'ACK_RESULT_UNSPECIFIED') this.events.settled({ ...final, result: ack.result, reason: ack.reason });
        }
        return;
      case 'cancel':
        this.events.cancel(message.cancel.taskId, message.cancel.attempt, message.cancel.reason);
        return;
      case 'ping':
        this.send({ kind: 'pong', pong: message.ping });
        return;
      case 'pong':
        if (message.pong.nonce === this.pingNonce) this.rtt.sample(Date.now() - Number(message.pong.sentUnixMs));
        return;
      case 'keepalive':
        // The dispatcher re-tuned this session's heartbeat (RTT or budget changed).
        this.applyKeepalive(message.keepalive.heartbeatIntervalMs, message.keepalive.idleTimeoutMs);
        return;
      case 'goAway':
        this.events.goAway(message.goAway.reason, message.goAway.drainDeadlineUnixMs);
        return;
      default:
        return;
    }
  }

  private startHeartbeats(welcome: WireWelcome): void {
    this.applyKeepalive(welcome.heartbeatIntervalMs, welcome.idleTimeoutMs);
  }

  /** Heartbeats (Ping) this worker sent on its stream. */
  get pingsSent(): number {
    return this.pingNonce;
  }

  /** Current heartbeat interval and idle timeout, as the dispatcher announced them. */
  get keepalive(): { intervalMs: number; idleTimeoutMs: number } {
    return { intervalMs: this.heartbeatIntervalMs, idleTimeoutMs: this.idleTimeoutMs };
  }

  private applyKeepalive(intervalMs: number, idleTimeoutMs: number): void {
    if (this.done) return;
    this.heartbeatIntervalMs = Math.max(10, intervalMs);
    this.idleTimeoutMs = Math.max(this.heartbeatIntervalMs, idleTimeoutMs);
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    const checkEveryMs = Math.max(5, Math.floor(this.heartbeatIntervalMs / 2));
    this.heartbeatTimer = setInterval(() => {
      const now = Date.now();
      if (now - this.lastReceivedMs >= this.idleTimeoutMs) {
        // The dispatcher answers every ping; silence this long means the stream is dead.
        this.call.cancel();
        return;
      }
      if (now - this.lastSentMs >= this.heartbeatIntervalMs) {
        this.send({ kind: 'ping', ping: { nonce: ++this.pingNonce, sentUnixMs: now } });
      }
      const silentMs = now - this.lastReceivedMs;
      if (silentMs >= SILENT_AFTER_INTERVALS * this.heartbeatIntervalMs) this.events.silent(silentMs);
    }, checkEveryMs);
  }

  private finish(error: grpc.ServiceError | undefined): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.welcomeTimer);
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    this.queued = [];
    this.events.closed(error);
  }
}

