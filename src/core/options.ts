import { DEFAULT_BACKOFF, type BackoffPolicy } from './backoff';
import { KEEPALIVE_DEFAULTS, validateKeepalivePolicy, type KeepalivePolicyOptions } from './keepalive-policy';

/**
 * Tuning of the dispatch core. User options go through `compileCoreOptions`
 * once (defaults, then range checks) and the compiled value is used everywhere.
 * Heartbeat intervals and idle timeouts adapt per session to the measured RTT
 * (keepalive-policy.ts); the drain grace follows seed 002 §2.1 (5 s).
 */
export interface CoreOptions {
  keepalive: KeepalivePolicyOptions;
  drainGraceMs: number;
  defaultMaxAttempts: number;
  defaultAttemptTimeoutMs: number;
  maxPayloadBytes: number;
  maxBatchTasks: number;
  maxSlotsPerSession: number;
  idempotencyRetentionMs: number;
  backoff: BackoffPolicy;
  /** How many answered updates per stream are remembered to re-acknowledge resends. */
  sequenceWindow: number;
  /**
   * A worker session older than this (minus up to 10 % jitter) is asked to
   * move (GoAway, drain, reconnect), so streams spread again after scale-out.
   * 0 disables it.
   */
  maxSessionAgeMs: number;
  /** Sessions younger than this are never moved (stops a worker bouncing between dispatchers). */
  minSessionAgeToMoveMs: number;
  /**
   * How long a ready task with a preferred zone waits for a free session of
   * that zone before any zone's session may take it. 0 spills at once.
   */
  zoneSpilloverDelayMs: number;
  /**
   * How long a dispatcher's claim on a task holds without its heartbeat. A
   * dispatcher that dies (or is cut off from the store) longer than this
   * loses its tasks: any live dispatcher re-queues them with a new attempt.
   * It heartbeats every third of it.
   */
  taskLeaseMs: number;
}

/**
 * The most slots a worker may announce in Hello or SetSlots (a wire limit,
 * fixed). The slot limit in force, maxSlotsPerSession, may change at
 * runtime; a worker above it is not refused, it just gets at most that many.
 */
export const MAX_SLOTS_PER_SESSION = 100_000;

export const CORE_DEFAULTS: CoreOptions = {
  keepalive: KEEPALIVE_DEFAULTS,
  drainGraceMs: 5_000,
  defaultMaxAttempts: 3,
  defaultAttemptTimeoutMs: 5 * 60_000,
  maxPayloadBytes: 4 * 1024 * 1024,
  maxBatchTasks: 10_000,
  maxSlotsPerSession: 10_000,
  idempotencyRetentionMs: 24 * 3600_000,
  backoff: DEFAULT_BACKOFF,
  sequenceWindow: 256,
  maxSessionAgeMs: 30 * 60_000,
  minSessionAgeToMoveMs: 2_000,
  zoneSpilloverDelayMs: 0,
  taskLeaseMs: 10_000,
};

function check(name: string, value: number, min: number, max: number): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`${name} must be between ${min} and ${max}, got ${value}`);
  }
}

/** For counts: a fraction would never match (sequenceWindow eviction) or fail every submit (defaultMaxAttempts). */
function checkCount(name: string, value: number, min: number, max: number): void {
  check(name, value, min, max);
  if (!Number.isInteger(value)) throw new RangeError(`${name} must be a whole number between ${min} and ${max}, got ${value}`);
}

/** Options as a caller gives them: nested groups may be partial. */
export type CoreOptionsInput = Partial<Omit<CoreOptions, 'backoff' | 'keepalive'>> & {
  backoff?: Partial<BackoffPolicy>;
  keepalive?: Partial<KeepalivePolicyOptions>;
};

export function compileCoreOptions(input: CoreOptionsInput = {}): CoreOptions {
  const o: CoreOptions = {
    ...CORE_DEFAULTS,
    ...input,
    backoff: { ...CORE_DEFAULTS.backoff, ...input.backoff },
    keepalive: { ...CORE_DEFAULTS.keepalive, ...input.keepalive },
  };
  validateKeepalivePolicy(o.keepalive);
  check('drainGraceMs', o.drainGraceMs, 0, 3_600_000);
  check('maxSessionAgeMs', o.maxSessionAgeMs, 0, 30 * 24 * 3600_000);
  check('minSessionAgeToMoveMs', o.minSessionAgeToMoveMs, 0, 3_600_000);
  check('zoneSpilloverDelayMs', o.zoneSpilloverDelayMs, 0, 3_600_000);
  checkCount('taskLeaseMs', o.taskLeaseMs, 1_000, 600_000);
  checkCount('defaultMaxAttempts', o.defaultMaxAttempts, 1, 1000);
  check('defaultAttemptTimeoutMs', o.defaultAttemptTimeoutMs, 1, 7 * 24 * 3600_000);
  checkCount('maxPayloadBytes', o.maxPayloadBytes, 1, 64 * 1024 * 1024);
  checkCount('maxBatchTasks', o.maxBatchTasks, 1, 100_000);
  checkCount('maxSlotsPerSession', o.maxSlotsPerSession, 1, MAX_SLOTS_PER_SESSION);
  check('idempotencyRetentionMs', o.idempotencyRetentionMs, 1000, 365 * 24 * 3600_000);
  check('backoff.initialMs', o.backoff.initialMs, 0, 3_600_000);
  check('backoff.multiplier', o.backoff.multiplier, 1, 10);
  check('backoff.maxMs', o.backoff.maxMs, o.backoff.initialMs, 24 * 3600_000);
  check('backoff.jitter', o.backoff.jitter, 0, 1);
  checkCount('sequenceWindow', o.sequenceWindow, 1, 100_000);
  return o;
}
