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
} from './wire';

/** Converts between wire messages and core values. The only mapping of field names and enums. */

const EMPTY = Buffer.alloc(0);

export function decodeSubmit(req: Partial<WireSubmitRequest>): RawSubmit {
  return {
    payload: req.payload ?? EMPTY,
    contentType: req.contentType ?? '',
    queue: req.queue ?? '',
    priority: req.priority ?? 0,
    idempotencyKey: req.idempotencyKey ?? '',
    maxAttempts: req.maxAttempts ?? 0,
    attemptTimeoutMs: req.attemptTimeoutMs ?? 0,
    scheduleToStartTimeoutMs: req.scheduleToStartTimeoutMs ?? 0,
    notBeforeMs: req.notBeforeUnixMs ?? 0,
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
    sequenceId: update.sequenceId ?? 0,
    version: update.version ?? 0,
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

export function encodeAck(ack: UpdateAckOut): WireUpdateAck {
  return {
    sequenceId: ack.sequenceId,
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
