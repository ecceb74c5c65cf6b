import type { CloseCause } from './session';
import type { TaskRecord } from './task-fields';

/**
 * What the engine observed, as plain data: the observation seam. The
 * engine appends events to its effects; the dispatcher hands them, once the
 * commit that carried them is durable, to its observers (metrics, traces,
 * the latency heatmap, SLO evaluation). The core imports no telemetry.
 *
 * Times are the engine clock's (ms since the epoch). Zones are '' when not
 * known (a producer that did not say).
 */

/** Where a task came from and where it runs: the labels of every latency series. */
export interface TaskZones {
  /** The zone the producer said it runs in. */
  producerZone: string;
  /** The zone of the dispatcher that holds the attempt (for `submitted`: that accepted it). */
  dispatcherZone: string;
  /** The zone of the worker that holds the attempt ('' before one does). */
  workerZone: string;
}

interface TaskEventBase extends TaskZones {
  taskId: string;
  queue: string;
  attempt: number;
  atMs: number;
  /** When the task was submitted. */
  createdMs: number;
  /** The producer's W3C trace context ('' when not traced). */
  traceparent: string;
  tracestate: string;
}

export type TaskEvent =
  /** The task is durable: its submit is acknowledged. */
  | (TaskEventBase & { kind: 'submitted' })
  /** An attempt was given to a worker (sent once durable). */
  | (TaskEventBase & { kind: 'assigned' })
  /**
   * The worker acknowledged the attempt: its first update for it. `atMs -
   * createdMs` of attempt 1 is the dispatch latency (submit to a worker
   * holding the task), which includes the dispatcher-worker round trip.
   */
  | (TaskEventBase & { kind: 'started'; assignedMs: number })
  /** The task reached a terminal state. */
  | (TaskEventBase & { kind: 'finished'; outcome: 'COMPLETED' | 'FAILED' | 'CANCELLED'; reason: string })
  /** An attempt ended and the task will run again (after backoff). */
  | (TaskEventBase & { kind: 'retried'; reason: string });

/** A worker update that was refused: why, and between which zones. */
export interface UpdateRefusedEvent {
  kind: 'updateRefused';
  reason: string;
  dispatcherZone: string;
  workerZone: string;
  atMs: number;
}

/** A heartbeat round trip measured on a worker stream (Ping to Pong). */
export interface RttSampleEvent {
  kind: 'rtt';
  dispatcherZone: string;
  workerZone: string;
  rttMs: number;
  atMs: number;
}

/** A worker stream ended. */
export interface SessionEndedEvent {
  kind: 'sessionEnded';
  dispatcherZone: string;
  workerZone: string;
  cause: CloseCause;
  lifetimeMs: number;
  atMs: number;
}

export type EngineEvent = TaskEvent | UpdateRefusedEvent | RttSampleEvent | SessionEndedEvent;

/** Receives the engine's events once durable; an adapter must not throw (the dispatcher counts and logs what it throws). */
export interface EngineObserver {
  onEvents(events: readonly EngineEvent[]): void;
}

/** The fields every task event takes from its task. */
type FromTask = 'taskId' | 'queue' | 'attempt' | 'atMs' | 'createdMs' | 'producerZone' | 'dispatcherZone' | 'workerZone' | 'traceparent' | 'tracestate' | 'kind';

/** An event about `task` as it is at `atMs` (its zones, attempt and trace context): the one place that builds them. */
export function taskEvent<K extends TaskEvent['kind']>(kind: K, task: TaskRecord, atMs: number, extra: Omit<Extract<TaskEvent, { kind: K }>, FromTask>): TaskEvent {
  return {
    kind,
    taskId: task.id,
    queue: task.queue,
    attempt: task.attempt,
    atMs,
    createdMs: task.createdMs,
    producerZone: task.producerZone,
    dispatcherZone: kind === 'submitted' ? task.acceptedZone : task.dispatcherZone,
    workerZone: task.workerZone,
    traceparent: task.traceparent,
    tracestate: task.tracestate,
    ...extra,
  } as TaskEvent;
}
