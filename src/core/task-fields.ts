import { InvalidArgumentError, ZonalError, type ErrorInfo } from '../errors';
import type { CoreOptions } from './options';
import type { TaskState } from './task-state';

/**
 * Every field of a task, in one table. The types of the durable record
 * (TaskRecord), of a validated submit (TaskSpec), of the wire messages that
 * carry a task (SubmitRequest, TaskInfo, Assignment), the SQL columns of
 * every store and the row mappings are all derived from it.
 *
 * Adding a field: a line here (with its validation if producers set it),
 * the proto field, a migration per SQL store, and the SDK option if
 * producers set it. Nothing else lists fields.
 *
 * - `group`: `definition` fields are written once, when the task is created,
 *   and never change; `state` fields are what every later write changes.
 * - `kind`: the value type, which also decides the SQL type and the mapping.
 * - `column`: the SQL column (snake_case) in every store.
 * - `info` / `assignment`: the field's name in TaskInfo / Assignment (as
 *   @grpc/proto-loader names it: camelCase).
 * - `submit`: the field's name in SubmitRequest, whether it is a uint64
 *   (decoded exactly, then narrowed), and `compile`, which validates the
 *   decoded value and applies the default (checked in table order).
 */
export type FieldKind = 'text' | 'int' | 'bytes' | 'bytes?' | 'labels' | 'error?' | 'state';

export interface CompileContext {
  options: CoreOptions;
  nowMs: number;
}

export interface FieldDef {
  readonly group: 'definition' | 'state';
  readonly kind: FieldKind;
  readonly column: string;
  readonly info?: string;
  readonly assignment?: string;
  readonly submit?: {
    readonly wire: string;
    readonly u64?: boolean;
    /** `value` is the decoded wire value, or undefined when the field was absent. */
    readonly compile: (value: unknown, ctx: CompileContext) => unknown;
  };
}

export const NAME_PATTERN = /^[A-Za-z0-9._:\-/]{1,128}$/;

/** A name as an error shows it: its first 64 characters, so a huge one cannot make the status too large to send. */
function shownName(name: string): string {
  return name.length <= 64 ? `"${name}"` : `"${name.slice(0, 64)}…" (${name.length} characters)`;
}
export const DEFAULT_QUEUE = 'default';
/** The most attempts a task may have; the version bound in update-rules.ts depends on it. */
export const MAX_ATTEMPTS = 1000;
const MAX_LABELS = 64;
const MAX_LABEL_BYTES = 1024;
export const MAX_KEY_LENGTH = 256;
const MAX_TIMEOUT_MS = 30 * 24 * 3600_000;
const EMPTY = new Uint8Array(0);

function zone(field: string): (value: unknown) => string {
  return (value) => {
    const zone = (value as string | undefined) ?? '';
    if (zone !== '' && !NAME_PATTERN.test(zone)) throw new InvalidArgumentError(field, `${shownName(zone)} must match ${NAME_PATTERN}`);
    return zone;
  };
}

/** W3C trace context (https://www.w3.org/TR/trace-context/): version-traceid-parentid-flags, lower-case hex. */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[\x21-\x7e]*)?$/;
const MAX_TRACEPARENT = 256;
const MAX_TRACESTATE = 512;

function traceparent(value: unknown): string {
  const text = (value as string | undefined) ?? '';
  if (text === '') return '';
  // Version 00 has exactly four fields; a later version may add more after the flags.
  if (text.length > MAX_TRACEPARENT || !TRACEPARENT.test(text) || text.startsWith('ff') || (text.startsWith('00') && text.length !== 55) || text.slice(3, 35) === '0'.repeat(32) || text.slice(36, 52) === '0'.repeat(16)) {
    throw new InvalidArgumentError('traceparent', 'must be a W3C traceparent ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", ids not all zero) or empty');
  }
  return text;
}

function tracestate(value: unknown): string {
  const text = (value as string | undefined) ?? '';
  if (text.length > MAX_TRACESTATE || !/^[\x20-\x7e]*$/.test(text)) throw new InvalidArgumentError('tracestate', `must be printable ASCII, at most ${MAX_TRACESTATE} characters`);
  return text;
}

export const TASK_FIELDS = {
  id: { group: 'definition', kind: 'text', column: 'id', info: 'taskId', assignment: 'taskId' },
  payload: {
    group: 'definition',
    kind: 'bytes',
    column: 'payload',
    info: 'payload',
    assignment: 'payload',
    submit: {
      wire: 'payload',
      compile: (value, { options }) => {
        const payload = (value as Uint8Array | null | undefined) ?? EMPTY;
        if (payload.byteLength > options.maxPayloadBytes) {
          throw new ZonalError(
            'PAYLOAD_TOO_LARGE',
            `payload is ${payload.byteLength} bytes; the limit is ${options.maxPayloadBytes} (maxPayloadBytes). Store large inputs elsewhere and pass a reference.`,
          );
        }
        return payload;
      },
    },
  },
  queue: {
    group: 'definition',
    kind: 'text',
    column: 'queue',
    info: 'queue',
    assignment: 'queue',
    submit: {
      wire: 'queue',
      compile: (value) => {
        const queue = (value as string | undefined) || DEFAULT_QUEUE;
        if (!NAME_PATTERN.test(queue)) throw new InvalidArgumentError('queue', `${shownName(queue)} must match ${NAME_PATTERN}`);
        return queue;
      },
    },
  },
  priority: {
    group: 'definition',
    kind: 'int',
    column: 'priority',
    info: 'priority',
    submit: {
      wire: 'priority',
      compile: (value) => {
        const priority = (value as number | undefined) ?? 0;
        if (!Number.isInteger(priority) || priority < -1000 || priority > 1000) {
          throw new InvalidArgumentError('priority', `must be an integer in -1000..1000, got ${priority}`);
        }
        return priority;
      },
    },
  },
  contentType: {
    group: 'definition',
    kind: 'text',
    column: 'content_type',
    info: 'contentType',
    assignment: 'contentType',
    submit: {
      wire: 'contentType',
      compile: (value) => {
        const contentType = (value as string | undefined) ?? '';
        if (contentType.length > 256) throw new InvalidArgumentError('content_type', 'must be at most 256 characters');
        return contentType;
      },
    },
  },
  idempotencyKey: {
    group: 'definition',
    kind: 'text',
    column: 'idempotency_key',
    submit: {
      wire: 'idempotencyKey',
      compile: (value) => {
        const key = (value as string | undefined) ?? '';
        if (key.length > MAX_KEY_LENGTH) throw new InvalidArgumentError('idempotency_key', `must be at most ${MAX_KEY_LENGTH} characters`);
        return key;
      },
    },
  },
  maxAttempts: {
    group: 'definition',
    kind: 'int',
    column: 'max_attempts',
    info: 'maxAttempts',
    assignment: 'maxAttempts',
    submit: {
      wire: 'maxAttempts',
      compile: (value, { options }) => {
        const maxAttempts = (value as number | undefined) || options.defaultMaxAttempts;
        if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_ATTEMPTS) {
          throw new InvalidArgumentError('max_attempts', `must be 1..${MAX_ATTEMPTS} (0 for the default), got ${maxAttempts}`);
        }
        return maxAttempts;
      },
    },
  },
  attemptTimeoutMs: {
    group: 'definition',
    kind: 'int',
    column: 'attempt_timeout_ms',
    submit: {
      wire: 'attemptTimeoutMs',
      u64: true,
      compile: (value, { options }) => {
        const ms = (value as number | undefined) || options.defaultAttemptTimeoutMs;
        if (!Number.isInteger(ms) || ms < 1 || ms > MAX_TIMEOUT_MS) {
          throw new InvalidArgumentError('attempt_timeout_ms', `must be a whole number of milliseconds, 1..${MAX_TIMEOUT_MS} (30 days; 0 for the default), got ${ms}`);
        }
        return ms;
      },
    },
  },
  scheduleToStartTimeoutMs: {
    group: 'definition',
    kind: 'int',
    column: 'schedule_to_start_timeout_ms',
    submit: {
      wire: 'scheduleToStartTimeoutMs',
      u64: true,
      compile: (value) => {
        const ms = (value as number | undefined) ?? 0;
        if (!Number.isInteger(ms) || ms < 0 || ms > MAX_TIMEOUT_MS) {
          throw new InvalidArgumentError('schedule_to_start_timeout_ms', `must be at most ${MAX_TIMEOUT_MS} (30 days)`);
        }
        return ms;
      },
    },
  },
  labels: {
    group: 'definition',
    kind: 'labels',
    column: 'labels',
    info: 'labels',
    assignment: 'labels',
    submit: {
      wire: 'labels',
      compile: (value) => {
        const labels = (value as Record<string, string> | undefined) ?? {};
        const keys = Object.keys(labels);
        if (keys.length > MAX_LABELS) throw new InvalidArgumentError('labels', `at most ${MAX_LABELS} labels`);
        for (const key of keys) {
          if (key.length === 0 || key.length + (labels[key]?.length ?? 0) > MAX_LABEL_BYTES) {
            throw new InvalidArgumentError('labels', `label "${key.slice(0, 32)}" must have a non-empty key and at most ${MAX_LABEL_BYTES} characters`);
          }
        }
        return labels;
      },
    },
  },
  /** The worker zone the task would like; other zones take it after zoneSpilloverDelayMs. */
  preferredZone: { group: 'definition', kind: 'text', column: 'preferred_zone', info: 'preferredZone', submit: { wire: 'preferredZone', compile: zone('preferred_zone') } },
  /** The zone the producer says it runs in (for the latency heatmap). */
  producerZone: { group: 'definition', kind: 'text', column: 'producer_zone', info: 'producerZone', assignment: 'producerZone', submit: { wire: 'producerZone', compile: zone('producer_zone') } },
  /** The producer's W3C trace context: the dispatcher's and the worker's spans join its trace. */
  traceparent: { group: 'definition', kind: 'text', column: 'traceparent', assignment: 'traceparent', submit: { wire: 'traceparent', compile: traceparent } },
  tracestate: { group: 'definition', kind: 'text', column: 'tracestate', assignment: 'tracestate', submit: { wire: 'tracestate', compile: tracestate } },
  /** The zone of the dispatcher that accepted the submit: a task without a preferred zone runs near it first. */
  acceptedZone: { group: 'definition', kind: 'text', column: 'accepted_zone', info: 'acceptedZone' },
  createdMs: { group: 'definition', kind: 'int', column: 'created_ms', info: 'createdUnixMs' },

  state: { group: 'state', kind: 'state', column: 'state', info: 'state' },
  /** Number of the current (or, while PENDING, the next) attempt, from 1. */
  attempt: { group: 'state', kind: 'int', column: 'attempt', info: 'attempt', assignment: 'attempt' },
  /** Strictly increases with every accepted change; locked once terminal. */
  version: { group: 'state', kind: 'int', column: 'version', info: 'version', assignment: 'version' },
  /** The dispatcher process holding the current attempt's lease ('' unless ASSIGNED or RUNNING). */
  owner: { group: 'state', kind: 'text', column: 'owner', },
  /** Zone of the dispatcher that holds (or last held) an attempt. */
  dispatcherZone: { group: 'state', kind: 'text', column: 'dispatcher_zone', info: 'dispatcherZone' },
  /** Until when the claim holds without its owner's heartbeat (0 unless ASSIGNED or RUNNING). */
  leaseExpiresMs: { group: 'state', kind: 'int', column: 'lease_expires_ms' },
  /** Session holding the current attempt, '' unless ASSIGNED or RUNNING. */
  sessionId: { group: 'state', kind: 'text', column: 'session_id' },
  workerId: { group: 'state', kind: 'text', column: 'worker_id', info: 'workerId' },
  /** Zone of the worker that holds (or last held) an attempt. */
  workerZone: { group: 'state', kind: 'text', column: 'worker_zone', info: 'workerZone' },
  /** Deadline of the current attempt, 0 unless ASSIGNED or RUNNING. */
  attemptDeadlineMs: { group: 'state', kind: 'int', column: 'attempt_deadline_ms', assignment: 'deadlineUnixMs' },
  progressPermille: { group: 'state', kind: 'int', column: 'progress_permille', info: 'progressPermille' },
  result: { group: 'state', kind: 'bytes?', column: 'result', info: 'result' },
  error: { group: 'state', kind: 'error?', column: 'error', info: 'error' },
  /** Not dispatched before this instant (delayed start, retry backoff). */
  notBeforeMs: {
    group: 'state',
    kind: 'int',
    column: 'not_before_ms',
    info: 'notBeforeUnixMs',
    submit: {
      wire: 'notBeforeUnixMs',
      u64: true,
      compile: (value, { nowMs }) => {
        const ms = (value as number | undefined) ?? 0;
        if (!Number.isInteger(ms) || ms < 0 || ms > nowMs + 365 * 24 * 3600_000) {
          throw new InvalidArgumentError('not_before_unix_ms', 'must be within one year from now (milliseconds since the epoch)');
        }
        return ms;
      },
    },
  },
  /** When a PENDING task became (or becomes) ready: max(notBeforeMs, when it became PENDING). */
  readyAtMs: { group: 'state', kind: 'int', column: 'ready_at_ms' },
  /** A PENDING task not assigned by then fails (SCHEDULE_TO_START_TIMEOUT); 0 means no limit. */
  startDeadlineMs: { group: 'state', kind: 'int', column: 'start_deadline_ms' },
  updatedMs: { group: 'state', kind: 'int', column: 'updated_ms', info: 'updatedUnixMs' },
} as const satisfies Record<string, FieldDef>;

type Fields = typeof TASK_FIELDS;
export type TaskField = keyof Fields;

/** The value type of each kind, in memory. */
export interface KindValue {
  text: string;
  int: number;
  bytes: Uint8Array;
  'bytes?': Uint8Array | null;
  labels: Record<string, string>;
  'error?': ErrorInfo | null;
  state: TaskState;
}

/** The durable record of a task: exactly the fields of the table. */
export type TaskRecord = { -readonly [K in TaskField]: KindValue[Fields[K]['kind']] };

/** A validated submit request: the fields a producer sets. */
export type TaskSpec = { -readonly [K in TaskField as Fields[K] extends { submit: object } ? K : never]: KindValue[Fields[K]['kind']] };

/** The fields of a submit request as decoded from the wire, before validation. */
export type RawSubmit = { [K in keyof TaskSpec]?: K extends 'payload' ? Uint8Array | null : TaskSpec[K] };

/** Names of the fields of one group. */
export type FieldsOf<G extends FieldDef['group']> = { [K in TaskField]: Fields[K]['group'] extends G ? K : never }[TaskField];

/** The field table as a list, in table order. */
export const FIELD_LIST: readonly (FieldDef & { name: TaskField })[] = Object.entries(TASK_FIELDS).map(([name, def]) => ({ name: name as TaskField, ...(def as FieldDef) }));

export const DEFINITION_FIELDS: readonly TaskField[] = FIELD_LIST.filter((f) => f.group === 'definition').map((f) => f.name);
export const STATE_FIELDS: readonly TaskField[] = FIELD_LIST.filter((f) => f.group === 'state').map((f) => f.name);
export const SUBMIT_FIELDS: readonly (FieldDef & { name: keyof TaskSpec; submit: NonNullable<FieldDef['submit']> })[] = FIELD_LIST.filter(
  (f): f is FieldDef & { name: keyof TaskSpec; submit: NonNullable<FieldDef['submit']> } => f.submit !== undefined,
);

/** Validates one submit request, field by field in table order. Throws InvalidArgumentError or PAYLOAD_TOO_LARGE. */
export function compileTaskSpec(raw: RawSubmit, options: CoreOptions, nowMs: number): TaskSpec {
  const ctx: CompileContext = { options, nowMs };
  const spec: Record<string, unknown> = {};
  for (const field of SUBMIT_FIELDS) spec[field.name] = field.submit.compile(raw[field.name], ctx);
  // W3C: a tracestate means nothing without the traceparent it goes with.
  if (spec['tracestate'] !== '' && spec['traceparent'] === '') throw new InvalidArgumentError('tracestate', 'is set without a traceparent; send both or neither');
  return spec as TaskSpec;
}

/** A copy of a record whose bytes, labels and error are its own (so neither side can alias the other's). */
export function copyRecord(r: TaskRecord): TaskRecord {
  return {
    ...r,
    payload: new Uint8Array(r.payload),
    labels: { ...r.labels },
    result: r.result === null ? null : new Uint8Array(r.result),
    error: r.error === null ? null : { ...r.error },
  };
}
