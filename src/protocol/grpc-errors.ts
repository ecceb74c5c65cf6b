import * as grpc from '@grpc/grpc-js';
import { isReason, Status, ZonalError, type Reason } from '../errors';

/** Trailing metadata key that carries the stable reason of an error status. */
export const REASON_METADATA_KEY = 'zonal-reason';
/**
 * gRPC's standard retry pushback (gRFC A6): trailing metadata with the
 * milliseconds a client should wait before retrying; negative means "do not
 * retry". The dispatcher sends it with RATE_LIMITED; the SDK's retry loop
 * waits it instead of its own backoff.
 */
export const RETRY_PUSHBACK_METADATA_KEY = 'grpc-retry-pushback-ms';

/** A ZonalError as a gRPC status for a unary or streaming call. */
export function toServiceError(error: unknown): Partial<grpc.ServiceError> {
  const zonal = error instanceof ZonalError ? error : new ZonalError('INTERNAL', `internal error: ${String(error instanceof Error ? error.message : error)}`);
  const metadata = new grpc.Metadata();
  metadata.set(REASON_METADATA_KEY, zonal.reason);
  if (zonal.retryPushbackMs !== undefined) metadata.set(RETRY_PUSHBACK_METADATA_KEY, String(Math.ceil(zonal.retryPushbackMs)));
  return { code: zonal.code, details: `${zonal.reason}: ${zonal.message}`, metadata };
}

/** Turns a grpc-js ServiceError from the dispatcher back into a ZonalError. */
export function fromServiceError(error: grpc.ServiceError): ZonalError {
  const reasonValue = error.metadata?.get(REASON_METADATA_KEY)[0];
  const reasonText = typeof reasonValue === 'string' ? reasonValue : '';
  const details = error.details ?? error.message;
  if (isReason(reasonText)) {
    const prefix = `${reasonText}: `;
    const retryPushbackMs = pushbackOf(error.metadata);
    return new ZonalError(reasonText, details.startsWith(prefix) ? details.slice(prefix.length) : details, { cause: error, ...(retryPushbackMs !== undefined ? { retryPushbackMs } : {}) });
  }
  const reason: Reason =
    error.code === Status.UNAVAILABLE ? 'UNAVAILABLE' : error.code === Status.DEADLINE_EXCEEDED ? 'DEADLINE_EXCEEDED' : 'CALL_FAILED';
  return new ZonalError(reason, `${Status[error.code] ?? error.code}: ${details}`, { cause: error, code: error.code });
}

/** The pushback hint, if the status carried one: a whole number of ms, or -1 for an unreadable one (gRFC A6: do not retry). */
function pushbackOf(metadata: grpc.Metadata | undefined): number | undefined {
  const value = metadata?.get(RETRY_PUSHBACK_METADATA_KEY)[0];
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : '';
  return /^\d{1,9}$/.test(text) ? Number(text) : -1;
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as Partial<grpc.ServiceError>).code === 'number' && 'metadata' in error;
}

/** A ZonalError for anything a call can fail with; undefined when it is not a gRPC or Zonal error. */
function asZonalError(error: unknown): ZonalError | undefined {
  if (error instanceof ZonalError) return error;
  if (isServiceError(error)) return fromServiceError(error);
  return undefined;
}

/**
 * The one decision whether an SDK call that failed with `error` may be sent
 * again. It reads the REASONS table through the ZonalError: UNAVAILABLE and
 * DEADLINE_EXCEEDED transport outcomes are, CALL_FAILED and CIRCUIT_OPEN are
 * not, and a dispatcher's own reason says for itself. Anything that is not a
 * gRPC or Zonal error (a bug, an abort) is not retryable.
 */
export function isRetryable(error: unknown): boolean {
  return asZonalError(error)?.retryable ?? false;
}

/**
 * Status codes that say the dependency itself is unwell (down, overloaded,
 * too slow, broken) rather than that it answered "no" to this request.
 */
const UNHEALTHY_CODES: ReadonlySet<number> = new Set([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.INTERNAL, Status.UNKNOWN, Status.DATA_LOSS]);

/**
 * Whether `error` counts against the health of the dependency that returned
 * it (what a circuit breaker counts). An answer such as INVALID_ARGUMENT,
 * NOT_FOUND or FAILED_PRECONDITION came from a healthy dependency and never
 * counts, nor does an error that is not a gRPC or Zonal error.
 */
export function indicatesUnhealthy(error: unknown): boolean {
  const zonal = asZonalError(error);
  return zonal !== undefined && zonal.reason !== 'CIRCUIT_OPEN' && UNHEALTHY_CODES.has(zonal.code);
}
