import type { ErrorInfo } from '../errors';
import type { TaskState } from './task-state';

/**
 * The durable record of a task. The store persists exactly these fields;
 * everything else the core keeps about a task is derived or transient.
 */
export interface TaskRecord {
  id: string;
  queue: string;
  priority: number;
  payload: Uint8Array;
  contentType: string;
  labels: Record<string, string>;
  preferredZone: string;
  idempotencyKey: string;
  state: TaskState;
  /** Number of the current (or, while PENDING, the next) attempt, from 1. */
  attempt: number;
  maxAttempts: number;
  /** Strictly increases with every accepted change; locked once terminal. */
  version: number;
  attemptTimeoutMs: number;
  /** 0 means no limit. */
  scheduleToStartTimeoutMs: number;
  /** Not dispatched before this instant (delayed start, retry backoff). */
  notBeforeMs: number;
  createdMs: number;
  updatedMs: number;
  /** Session holding the current attempt, '' unless ASSIGNED or RUNNING. */
  sessionId: string;
  workerId: string;
  /** Deadline of the current attempt, 0 unless ASSIGNED or RUNNING. */
  attemptDeadlineMs: number;
  progressPermille: number;
  result: Uint8Array | null;
  error: ErrorInfo | null;
  /** FIFO order within a priority: assigned when the task last became PENDING. */
  seq: number;
}

/** A validated submit request (see submit-spec.ts). */
export interface TaskSpec {
  queue: string;
  priority: number;
  payload: Uint8Array;
  contentType: string;
  labels: Record<string, string>;
  preferredZone: string;
  idempotencyKey: string;
  maxAttempts: number;
  attemptTimeoutMs: number;
  scheduleToStartTimeoutMs: number;
  notBeforeMs: number;
}
