import type { ErrorInfo } from '../errors';
import type { AssignmentOut } from '../core/engine';
import type { HelloSpec } from '../core/session';
import type { RawSubmit } from '../core/submit-spec';
import type { TaskRecord } from '../core/task';
import type { TaskState } from '../core/task-state';
import type { UpdateAckOut, WorkerUpdate } from '../core/update';
import type {
  WireAssignment,
  WireError,
  WireHello,
  WireSubmitRequest,
  WireTaskInfo,
  WireTaskState,
  WireTaskUpdate,
  WireUpdateAck,
  U64,
} from './wire';

/** Converts between wire messages and core values. The only mapping of field names and enums. */

const EMPTY = Buffer.alloc(0);

/**
 * A received 64-bit integer as a number. Exact up to 2^53-1; anything larger
 * comes out as a number that is not a safe integer, which every range check
 * refuses (it is never rounded into range).
 */
export function u64(value: U64 | undefined): number {
  return value === undefined ? 0 : typeof value === 'number' ? value : Number(value);
}

export function decodeSubmit(req: Partial<WireSubmitRequest>): RawSubmit {
  return {
    payload: req.payload ?? EMPTY,
    contentType: req.contentType ?? '',
    queue: req.queue ?? '',
    priority: req.priority ?? 0,
    idempotencyKey: req.idempotencyKey ?? '',
    maxAttempts: req.maxAttempts ?? 0,
    attemptTimeoutMs: u64(req.attemptTimeoutMs),
    scheduleToStartTimeoutMs: u64(req.scheduleToStartTimeoutMs),
    notBeforeMs: u64(req.notBeforeUnixMs),
    labels: req.labels ?? {},
    preferredZone: req.preferredZone ?? '',
  };
}

export function encodeError(error: ErrorInfo | null): WireError | null {
  return error === null ? null : { code: error.code, reason: error.reason, message: error.message, retryable: error.retryable };
}

export function decodeError(error: WireError | null | undefined): ErrorInfo | null {
  if (error === null || error === undefined) return null;
  return { code: error.code ?? 0, reason: error.reason ?? '', message: error.message ?? '', retryable: error.retryable ?? false };
}

export function encodeTaskInfo(task: TaskRecord): WireTaskInfo {
  return {
    taskId: task.id,
    state: task.state,
    queue: task.queue,
    priority: task.priority,
    attempt: task.attempt,
    maxAttempts: task.maxAttempts,
    version: task.version,
    payload: Buffer.from(task.payload.buffer, task.payload.byteOffset, task.payload.byteLength),
    contentType: task.contentType,
    result: task.result === null ? EMPTY : Buffer.from(task.result.buffer, task.result.byteOffset, task.result.byteLength),
    error: encodeError(task.error),
    progressPermille: task.progressPermille,
    labels: task.labels,
    preferredZone: task.preferredZone,
    workerId: task.workerId,
    createdUnixMs: task.createdMs,
    updatedUnixMs: task.updatedMs,
    notBeforeUnixMs: task.notBeforeMs,
  };
}

export function decodeHello(hello: Partial<WireHello>): HelloSpec {
  return {
    workerId: hello.workerId ?? '',
    zone: hello.zone ?? '',
    labels: hello.labels ?? {},
    slots: hello.slots ?? 0,
    queues: hello.queues ?? [],
  };
}

export function decodeUpdate(update: Partial<WireTaskUpdate>): WorkerUpdate {
  return {
    taskId: update.taskId ?? '',
    attempt: update.attempt ?? 0,
    status: update.status ?? 'TASK_STATE_UNSPECIFIED',
    sequenceId: u64(update.sequenceId),
    version: u64(update.version),
    progressPermille: update.progressPermille ?? 0,
    result: update.result !== undefined && update.result.byteLength > 0 ? update.result : null,
    error: decodeError(update.error),
  };
}

export function encodeAssignment(a: AssignmentOut): WireAssignment {
  const task = a.task;
  return {
    taskId: task.id,
    attempt: a.attempt,
    version: a.version,
    deadlineUnixMs: a.deadlineMs,
    payload: Buffer.from(task.payload.buffer, task.payload.byteOffset, task.payload.byteLength),
    contentType: task.contentType,
    queue: task.queue,
    labels: task.labels,
    maxAttempts: task.maxAttempts,
  };
}

/** `sentSequenceId` is the update's sequence_id as received, echoed exactly even when out of range. */
export function encodeAck(ack: UpdateAckOut, sentSequenceId: U64 | undefined): WireUpdateAck {
  return {
    sequenceId: sentSequenceId ?? ack.sequenceId,
    taskId: ack.taskId,
    result: ack.result,
    reason: ack.reason,
    message: ack.message,
    state: ack.state === '' ? 'TASK_STATE_UNSPECIFIED' : ack.state,
    version: ack.version,
  };
}

export function decodeTaskState(state: WireTaskState | string): TaskState | undefined {
  switch (state) {
    case 'PENDING':
    case 'ASSIGNED':
    case 'RUNNING':
    case 'COMPLETED':
    case 'FAILED':
    case 'CANCELLED':
      return state;
    default:
      return undefined;
  }
}
