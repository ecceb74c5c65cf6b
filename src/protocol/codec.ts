import type { ErrorInfo } from '../errors';
import type { AssignmentOut } from '../core/engine';
import type { HelloSpec } from '../core/session';
import { FIELD_LIST, SUBMIT_FIELDS, type FieldDef, type RawSubmit, type TaskRecord } from '../core/task-fields';
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

/** A SubmitRequest's task fields, by the field table's `submit` names; uint64 fields narrowed by u64(). */
export function decodeSubmit(req: Partial<WireSubmitRequest>): RawSubmit {
  const wire = req as Record<string, unknown>;
  const raw: Record<string, unknown> = {};
  for (const field of SUBMIT_FIELDS) {
    const value = wire[field.submit.wire];
    raw[field.name] = field.submit.u64 === true ? u64(value as U64 | undefined) : value;
  }
  return raw as RawSubmit;
}

export function encodeError(error: ErrorInfo | null): WireError | null {
  return error === null ? null : { code: error.code, reason: error.reason, message: error.message, retryable: error.retryable };
}

export function decodeError(error: WireError | null | undefined): ErrorInfo | null {
  if (error === null || error === undefined) return null;
  return { code: error.code ?? 0, reason: error.reason ?? '', message: error.message ?? '', retryable: error.retryable ?? false };
}

/** A record's value as the wire carries a field of `kind`. */
function toWire(kind: FieldDef['kind'], value: unknown): unknown {
  switch (kind) {
    case 'bytes':
    case 'bytes?': {
      const bytes = value as Uint8Array | null;
      return bytes === null ? EMPTY : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    case 'error?':
      return encodeError(value as ErrorInfo | null);
    default:
      return value;
  }
}

const INFO_FIELDS = FIELD_LIST.filter((f) => f.info !== undefined);
const ASSIGNMENT_FIELDS = FIELD_LIST.filter((f) => f.assignment !== undefined);

/** TaskInfo: every field with an `info` name. */
export function encodeTaskInfo(task: TaskRecord): WireTaskInfo {
  const out: Record<string, unknown> = {};
  for (const field of INFO_FIELDS) out[field.info!] = toWire(field.kind, task[field.name]);
  return out as WireTaskInfo;
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

/** Assignment: every field with an `assignment` name; the attempt, version and deadline as the assignment made them. */
export function encodeAssignment(a: AssignmentOut): WireAssignment {
  const out: Record<string, unknown> = {};
  for (const field of ASSIGNMENT_FIELDS) out[field.assignment!] = toWire(field.kind, a.task[field.name]);
  const wire = out as WireAssignment;
  wire.attempt = a.attempt;
  wire.version = a.version;
  wire.deadlineUnixMs = a.deadlineMs;
  return wire;
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
