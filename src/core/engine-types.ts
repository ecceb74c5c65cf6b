import type { CloseCause } from './session';
import type { EngineEvent } from './task-events';
import type { TaskRecord } from './task-fields';
import type { TaskState } from './task-state';

/**
 * What the engine hands its adapter: the answers to its calls and the side
 * effects to carry out after the next durable commit.
 */

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
  /** CANCELLED, ATTEMPT_TIMEOUT, or LEASE_LOST (another dispatcher took the task over). */
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
  /** What happened, for observers (task-events.ts); handed over once durable. */
  events: EngineEvent[];
}

/** Why a session is asked to reconnect elsewhere. */
export type MoveReason = 'ZONE_REBALANCE' | 'MAX_SESSION_AGE';

/** Who this engine is: the dispatcher process (its incarnation) and its zone. */
export interface EngineIdentity {
  owner: string;
  zone: string;
}

/** What late updates are answered with for a task that left memory: finished here, or lost to another dispatcher's change. */
export interface FinishedTask {
  id: string;
  state: TaskState;
  version: number;
  attempt: number;
  sessionId: '';
}

export interface CancelOutcome {
  state: TaskState;
  cancelled: boolean;
}

export interface SubmitOut {
  task: TaskRecord;
  /** The idempotency key matched a task submitted here and not yet durable. */
  deduplicated: boolean;
}

/** No effects yet. */
export function newEffects(): Effects {
  return { assignments: new Map(), cancels: new Map(), closed: [], goAways: [], pings: [], keepaliveUpdates: [], events: [] };
}

export function pushTo<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
