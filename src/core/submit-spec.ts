import { InvalidArgumentError, ZonalError } from '../errors';
import type { CoreOptions } from './options';
import type { TaskSpec } from './task';

/** The fields of a submit request as decoded from the wire, before validation. */
export interface RawSubmit {
  payload?: Uint8Array | null;
  contentType?: string;
  queue?: string;
  priority?: number;
  idempotencyKey?: string;
  maxAttempts?: number;
  attemptTimeoutMs?: number;
  scheduleToStartTimeoutMs?: number;
  notBeforeMs?: number;
  labels?: Record<string, string>;
  preferredZone?: string;
}

export const NAME_PATTERN = /^[A-Za-z0-9._:\-/]{1,128}$/;
const MAX_LABELS = 64;
const MAX_LABEL_BYTES = 1024;
const MAX_KEY_LENGTH = 256;
const MAX_TIMEOUT_MS = 30 * 24 * 3600_000;
/** The most attempts a task may have; the version bound in update-rules.ts depends on it. */
export const MAX_ATTEMPTS = 1000;

export const DEFAULT_QUEUE = 'default';

/** Validates one submit request. Throws InvalidArgumentError or PAYLOAD_TOO_LARGE. */
export function compileTaskSpec(raw: RawSubmit, options: CoreOptions, nowMs: number): TaskSpec {
  const payload = raw.payload ?? new Uint8Array(0);
  if (payload.byteLength > options.maxPayloadBytes) {
    throw new ZonalError(
      'PAYLOAD_TOO_LARGE',
      `payload is ${payload.byteLength} bytes; the limit is ${options.maxPayloadBytes} (maxPayloadBytes). Store large inputs elsewhere and pass a reference.`,
    );
  }
  const queue = raw.queue || DEFAULT_QUEUE;
  if (!NAME_PATTERN.test(queue)) throw new InvalidArgumentError('queue', `"${queue}" must match ${NAME_PATTERN}`);
  const priority = raw.priority ?? 0;
  if (!Number.isInteger(priority) || priority < -1000 || priority > 1000) {
    throw new InvalidArgumentError('priority', `must be an integer in -1000..1000, got ${priority}`);
  }
  const contentType = raw.contentType ?? '';
  if (contentType.length > 256) throw new InvalidArgumentError('content_type', 'must be at most 256 characters');
  const idempotencyKey = raw.idempotencyKey ?? '';
  if (idempotencyKey.length > MAX_KEY_LENGTH) {
    throw new InvalidArgumentError('idempotency_key', `must be at most ${MAX_KEY_LENGTH} characters`);
  }
  const maxAttempts = raw.maxAttempts || options.defaultMaxAttempts;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_ATTEMPTS) {
    throw new InvalidArgumentError('max_attempts', `must be 1..${MAX_ATTEMPTS} (0 for the default), got ${maxAttempts}`);
  }
  const attemptTimeoutMs = raw.attemptTimeoutMs || options.defaultAttemptTimeoutMs;
  if (!Number.isInteger(attemptTimeoutMs) || attemptTimeoutMs < 1 || attemptTimeoutMs > MAX_TIMEOUT_MS) {
    throw new InvalidArgumentError('attempt_timeout_ms', `must be a whole number of milliseconds, 1..${MAX_TIMEOUT_MS} (30 days; 0 for the default), got ${attemptTimeoutMs}`);
  }
  const scheduleToStartTimeoutMs = raw.scheduleToStartTimeoutMs ?? 0;
  if (!Number.isInteger(scheduleToStartTimeoutMs) || scheduleToStartTimeoutMs < 0 || scheduleToStartTimeoutMs > MAX_TIMEOUT_MS) {
    throw new InvalidArgumentError('schedule_to_start_timeout_ms', `must be at most ${MAX_TIMEOUT_MS} (30 days)`);
  }
  const notBeforeMs = raw.notBeforeMs ?? 0;
  if (!Number.isInteger(notBeforeMs) || notBeforeMs < 0 || notBeforeMs > nowMs + 365 * 24 * 3600_000) {
    throw new InvalidArgumentError('not_before_unix_ms', 'must be within one year from now (milliseconds since the epoch)');
  }
  const labels = raw.labels ?? {};
  const labelKeys = Object.keys(labels);
  if (labelKeys.length > MAX_LABELS) throw new InvalidArgumentError('labels', `at most ${MAX_LABELS} labels`);
  for (const key of labelKeys) {
    if (key.length === 0 || key.length + (labels[key]?.length ?? 0) > MAX_LABEL_BYTES) {
      throw new InvalidArgumentError('labels', `label "${key.slice(0, 32)}" must have a non-empty key and at most ${MAX_LABEL_BYTES} characters`);
    }
  }
  const preferredZone = raw.preferredZone ?? '';
  if (preferredZone !== '' && !NAME_PATTERN.test(preferredZone)) {
    throw new InvalidArgumentError('preferred_zone', `"${preferredZone}" must match ${NAME_PATTERN}`);
  }
  return {
    queue,
    priority,
    payload,
    contentType,
    labels,
    preferredZone,
    idempotencyKey,
    maxAttempts,
    attemptTimeoutMs,
    scheduleToStartTimeoutMs,
    notBeforeMs,
  };
}
