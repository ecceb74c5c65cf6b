/**
 * Every error Zonal reports, in one table: a stable reason, the gRPC status
 * code it maps to, and whether retrying the same request may succeed.
 *
 * Reasons are part of the public contract (docs/protocol.md). A retired reason
 * is never reused for a different meaning.
 */
import { status as Status } from '@grpc/grpc-js';

export { Status };

export const REASONS = {
  // Producer-facing
  INVALID_ARGUMENT: { code: Status.INVALID_ARGUMENT, retryable: false },
  PAYLOAD_TOO_LARGE: { code: Status.RESOURCE_EXHAUSTED, retryable: false },
  BATCH_TOO_LARGE: { code: Status.RESOURCE_EXHAUSTED, retryable: false },
  TASK_NOT_FOUND: { code: Status.NOT_FOUND, retryable: false },
  SHUTTING_DOWN: { code: Status.UNAVAILABLE, retryable: true },
  STORE_UNAVAILABLE: { code: Status.UNAVAILABLE, retryable: true },
  // Startup refusals of `zonal serve` (src/store/store-errors.ts): the process exits non-zero.
  DATA_DIR_IN_USE: { code: Status.FAILED_PRECONDITION, retryable: false },
  STORE_DAMAGED: { code: Status.DATA_LOSS, retryable: false },
  INTERNAL: { code: Status.INTERNAL, retryable: false },
  // Transport outcomes seen by the SDK (no reason from the dispatcher)
  UNAVAILABLE: { code: Status.UNAVAILABLE, retryable: true },
  DEADLINE_EXCEEDED: { code: Status.DEADLINE_EXCEEDED, retryable: true },
  CALL_FAILED: { code: Status.UNKNOWN, retryable: false },
  // The SDK's circuit breaker to the target is open: failed fast, nothing was sent.
  // Not retryable by the immediate caller (its retry loop stops at once); the
  // breaker itself lets one probe through after its reset timeout, so callers
  // may try again later. Travels as UNAVAILABLE for code that only reads codes.
  CIRCUIT_OPEN: { code: Status.UNAVAILABLE, retryable: false },
  // Worker stream
  PROTOCOL_VIOLATION: { code: Status.INVALID_ARGUMENT, retryable: false },
  INVALID_UPDATE: { code: Status.INVALID_ARGUMENT, retryable: false },
  SEQUENCE_GAP: { code: Status.FAILED_PRECONDITION, retryable: false },
  SEQUENCE_REGRESSION: { code: Status.FAILED_PRECONDITION, retryable: false },
  STALE_VERSION: { code: Status.FAILED_PRECONDITION, retryable: false },
  FENCED: { code: Status.FAILED_PRECONDITION, retryable: false },
  NOT_HELD: { code: Status.FAILED_PRECONDITION, retryable: false },
  TERMINAL: { code: Status.FAILED_PRECONDITION, retryable: false },
  INVALID_TRANSITION: { code: Status.FAILED_PRECONDITION, retryable: false },
  SESSION_IDLE: { code: Status.UNAVAILABLE, retryable: true },
  SESSION_STALLED: { code: Status.UNAVAILABLE, retryable: true },
  // Task outcomes (TaskInfo.error)
  HANDLER_FAILED: { code: Status.UNKNOWN, retryable: true },
  ATTEMPT_TIMEOUT: { code: Status.DEADLINE_EXCEEDED, retryable: true },
  LEASE_LOST: { code: Status.UNAVAILABLE, retryable: true },
  SCHEDULE_TO_START_TIMEOUT: { code: Status.DEADLINE_EXCEEDED, retryable: false },
  CANCELLED: { code: Status.CANCELLED, retryable: false },
  // Access (src/security): who the caller is, and what it may do.
  UNAUTHENTICATED: { code: Status.UNAUTHENTICATED, retryable: false },
  PERMISSION_DENIED: { code: Status.PERMISSION_DENIED, retryable: false },
  // Admission limits: retry later (RATE_LIMITED carries grpc-retry-pushback-ms, which the SDK waits).
  RATE_LIMITED: { code: Status.RESOURCE_EXHAUSTED, retryable: true },
  QUEUE_FULL: { code: Status.RESOURCE_EXHAUSTED, retryable: true },
  TOO_MANY_STREAMS: { code: Status.RESOURCE_EXHAUSTED, retryable: true },
  // The dispatcher holds its most submitted tasks not yet durable (a slow store): retry after the pushback.
  OVERLOADED: { code: Status.RESOURCE_EXHAUSTED, retryable: true },
} as const;

export type Reason = keyof typeof REASONS;

export function isReason(value: string): value is Reason {
  return Object.prototype.hasOwnProperty.call(REASONS, value);
}

/** The serialisable form of an error, as carried in TaskInfo.error and SubmitResult.error. */
export interface ErrorInfo {
  code: number;
  reason: string;
  message: string;
  retryable: boolean;
}

/**
 * Base class of every error Zonal throws. `code` is the gRPC status the error
 * travels as; `reason` is stable and machine-readable; the message says what to do.
 */
export class ZonalError extends Error {
  readonly code: number;
  readonly reason: Reason;
  readonly retryable: boolean;
  /**
   * The dispatcher's grpc-retry-pushback-ms hint: wait this long before
   * retrying (RATE_LIMITED). Undefined when it sent none; negative means
   * "do not retry".
   */
  readonly retryPushbackMs: number | undefined;

  /** `code` overrides the reason's usual status (CALL_FAILED keeps the transport's code). */
  constructor(reason: Reason, message: string, options?: { cause?: unknown; code?: number; retryPushbackMs?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ZonalError';
    this.reason = reason;
    this.code = options?.code ?? REASONS[reason].code;
    this.retryable = REASONS[reason].retryable;
    this.retryPushbackMs = options?.retryPushbackMs;
  }

  toInfo(): ErrorInfo {
    return { code: this.code, reason: this.reason, message: this.message, retryable: this.retryable };
  }
}

export function errorInfo(reason: Reason, message: string): ErrorInfo {
  return { code: REASONS[reason].code, reason, message, retryable: REASONS[reason].retryable };
}

/** Thrown by a request whose fields are missing, malformed or out of range. */
export class InvalidArgumentError extends ZonalError {
  constructor(field: string, problem: string) {
    super('INVALID_ARGUMENT', `${field}: ${problem}`);
    this.name = 'InvalidArgumentError';
  }
}

/** Thrown by the SDK when a task ends FAILED or CANCELLED and its result was awaited. */
export class TaskFailedError extends Error {
  readonly taskId: string;
  readonly state: string;
  readonly info: ErrorInfo | undefined;
  constructor(taskId: string, state: string, info: ErrorInfo | undefined) {
    super(`task ${taskId} ended ${state}${info ? `: ${info.reason}: ${info.message}` : ''}`);
    this.name = 'TaskFailedError';
    this.taskId = taskId;
    this.state = state;
    this.info = info;
  }
}
