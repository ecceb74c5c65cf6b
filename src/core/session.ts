import { RttEstimator } from './rtt-estimator';
import { SequenceWindow } from './sequence-window';
import type { UpdateAckOut, WorkerUpdate } from './update';

/**
 * Lifecycle of a worker session (one stream):
 * - OPEN: receives new tasks while it has free slots.
 * - DRAINING: the worker sent Drain, or the dispatcher is stopping; no new
 *   tasks, in-flight ones may finish until the drain deadline.
 * - CLOSED: the stream ended or was ended; its unfinished tasks were re-queued.
 */
export type SessionLifecycle = 'OPEN' | 'DRAINING' | 'CLOSED';

export type CloseCause = 'STREAM_ENDED' | 'IDLE' | 'STALLED' | 'DRAINED' | 'DRAIN_EXPIRED' | 'PROTOCOL_VIOLATION' | 'SHUTDOWN';

/**
 * One held attempt. An orphan hold is an attempt the dispatcher took away
 * (cancel, attempt timeout) whose worker has not yet confirmed it stopped:
 * it still occupies a slot, because the worker is still busy with it.
 */
export interface Hold {
  taskId: string;
  attempt: number;
  orphan: boolean;
  /** Why the attempt was taken away, once it is an orphan: the Cancel's reason. */
  orphanReason?: string;
  /** The version the Assignment carried: this attempt's versions stay within it + ATTEMPT_VERSION_SPAN. */
  assignedVersion: number;
  /** When the assignment was made; an assignment the worker never acknowledges marks a stalled reader. */
  assignedMs: number;
  /** True once the worker sent any update for this attempt (proof it read the assignment). */
  acknowledged: boolean;
  /** The last accepted non-final update, so an identical resend is re-acknowledged. */
  lastAccepted?: { update: WorkerUpdate; ack: UpdateAckOut };
}

export interface HelloSpec {
  workerId: string;
  zone: string;
  labels: Record<string, string>;
  slots: number;
  queues: string[];
}

export function holdKey(taskId: string, attempt: number): string {
  return `${taskId}#${attempt}`;
}

const RECENT_FINISHED = 256;

export class SessionState {
  readonly id: string;
  readonly workerId: string;
  readonly zone: string;
  readonly labels: Record<string, string>;
  readonly queues: readonly string[];
  /** Slots in use: what the worker asked for, capped by the dispatcher's slot limit. */
  slots: number;
  /** What the worker asked for (Hello or SetSlots); kept so a raised limit restores it. */
  requestedSlots: number;
  lifecycle: SessionLifecycle = 'OPEN';
  lastInboundMs: number;
  /** Last time anything was written to this stream. */
  lastOutboundMs: number;
  /** This session's heartbeat interval and idle timeout, from the keepalive policy. */
  intervalMs = 0;
  idleTimeoutMs = 0;
  /** Identifies the live heartbeat deadline; bumped when a new configuration reschedules it. */
  heartbeatGeneration = 0;
  /**
   * When the idle timeout shrinks, silence that began under the old one is
   * not judged by the new one: no IDLE/STALLED verdict before this instant.
   */
  idleNotBeforeMs = 0;
  /** The interval the worker was last told (Welcome or KeepaliveUpdate). */
  announcedIntervalMs = 0;
  readonly rtt = new RttEstimator();
  /** The explicit heartbeat awaiting its Pong; a worker that stops reading never answers it. */
  outstandingPing: { nonce: number; sentMs: number } | undefined;
  pingsSent = 0;
  drainDeadlineMs = 0;
  readonly holds = new Map<string, Hold>();
  /** Slots offered to a claim that is in flight: not free, not yet held. */
  claimPending = 0;
  readonly sequence: SequenceWindow;
  /** Last accepted update of recently finished tasks, so an identical resend is re-acknowledged. */
  readonly recentFinished = new Map<string, { update: WorkerUpdate; ack: UpdateAckOut }>();

  readonly openedMs: number;

  constructor(id: string, hello: HelloSpec, nowMs: number, sequenceWindow: number) {
    this.id = id;
    this.openedMs = nowMs;
    this.workerId = hello.workerId;
    this.zone = hello.zone;
    this.labels = hello.labels;
    this.queues = hello.queues;
    this.slots = hello.slots;
    this.requestedSlots = hello.slots;
    this.lastInboundMs = nowMs;
    this.lastOutboundMs = nowMs;
    this.sequence = new SequenceWindow(sequenceWindow);
  }

  /** Free slots for new tasks; 0 unless OPEN. */
  get credit(): number {
    return this.lifecycle === 'OPEN' ? Math.max(0, this.slots - this.holds.size - this.claimPending) : 0;
  }

  rememberFinished(taskId: string, update: WorkerUpdate, ack: UpdateAckOut): void {
    this.recentFinished.set(taskId, { update, ack });
    if (this.recentFinished.size > RECENT_FINISHED) {
      const oldest = this.recentFinished.keys().next().value;
      if (oldest !== undefined) this.recentFinished.delete(oldest);
    }
  }
}
