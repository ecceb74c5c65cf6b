/**
 * The kinds of task the soak submits, in one table read by the producer
 * (what to submit, how often), the worker (what its handler does) and the
 * verdict (which terminal state the store must end with, and how many
 * executions a kind needs by design). The payload carries the kind, the
 * handler's sleep and the idempotency key, as JSON.
 */
import type { TaskState } from '../../src/core/task-state';

export interface TaskKind {
  /** Share of the submits (weights are relative). */
  weight: number;
  /** Attempt timeout given at submit. */
  attemptTimeoutMs: number;
  /** The handler sleeps a random time in this range (ms), cut short by a cancel. */
  sleepMs: readonly [number, number];
  /** Executions the kind needs without any fault (flaky and timeout fail their first attempt on purpose). */
  designedExecutions: number;
  /** The terminal state the store must end with (cancel: see expectedStates). */
  expect: TaskState;
  what: string;
}

export const TASK_KINDS = {
  ok: { weight: 60, attemptTimeoutMs: 30_000, sleepMs: [5, 150], designedExecutions: 1, expect: 'COMPLETED', what: 'returns after a short sleep' },
  slow: { weight: 10, attemptTimeoutMs: 30_000, sleepMs: [1_000, 4_000], designedExecutions: 1, expect: 'COMPLETED', what: 'returns after 1-4 s, so it is often in flight when a fault strikes' },
  flaky: { weight: 8, attemptTimeoutMs: 30_000, sleepMs: [5, 150], designedExecutions: 2, expect: 'COMPLETED', what: 'throws a retryable error on attempt 1, then returns' },
  timeout: { weight: 5, attemptTimeoutMs: 1_500, sleepMs: [5, 150], designedExecutions: 2, expect: 'COMPLETED', what: 'outsleeps its 1.5 s attempt timeout on attempt 1 (ATTEMPT_TIMEOUT), then returns' },
  fail: { weight: 7, attemptTimeoutMs: 30_000, sleepMs: [5, 50], designedExecutions: 1, expect: 'FAILED', what: 'throws NonRetryableError: FAILED with HANDLER_FAILED at once' },
  cancel: { weight: 10, attemptTimeoutMs: 30_000, sleepMs: [3_000, 6_000], designedExecutions: 1, expect: 'CANCELLED', what: 'sleeps 3-6 s; the producer cancels it 0.2-1.5 s after the acknowledgement' },
} as const satisfies Record<string, TaskKind>;

export type KindName = keyof typeof TASK_KINDS;
export const KIND_NAMES = Object.keys(TASK_KINDS) as KindName[];

/** Attempts every soak task may use: far more than faults should ever take. */
export const SOAK_MAX_ATTEMPTS = 20;
export const SOAK_QUEUE = 'soak';
/** How long the first attempt of a `timeout` task sleeps: past its attempt timeout. */
export const TIMEOUT_KIND_FIRST_SLEEP_MS = 4_000;

export interface SoakPayload {
  kind: KindName;
  sleepMs: number;
  /** The idempotency key it was submitted under: an execution names the submit it came from. */
  key: string;
}

export function encodePayload(p: SoakPayload): string {
  return JSON.stringify(p);
}

export function decodePayload(bytes: Uint8Array): SoakPayload {
  const parsed = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<SoakPayload>;
  if (parsed.kind === undefined || !(parsed.kind in TASK_KINDS) || typeof parsed.sleepMs !== 'number' || typeof parsed.key !== 'string') {
    throw new Error(`not a soak payload: ${Buffer.from(bytes).toString('utf8').slice(0, 80)}`);
  }
  return { kind: parsed.kind, sleepMs: parsed.sleepMs, key: parsed.key };
}

/** What the producer learned from its CancelTask call, if it made one. */
export type CancelOutcome = { answered: true; cancelled: boolean; state: string } | { answered: false };

/**
 * The terminal states the store may hold for a task of `kind`. A cancel
 * the dispatcher answered decides it (cancelled: CANCELLED; not cancelled:
 * the terminal state it answered with); an unanswered one leaves CANCELLED
 * or COMPLETED (the cancel may have landed or not).
 */
export function expectedStates(kind: KindName, cancel: CancelOutcome | undefined): readonly string[] {
  if (kind !== 'cancel') return [TASK_KINDS[kind].expect];
  if (cancel === undefined || !cancel.answered) return ['CANCELLED', 'COMPLETED'];
  return cancel.cancelled ? ['CANCELLED'] : [cancel.state];
}

/** The result a soak worker returns: which worker incarnation ran which attempt (the verdict traces it back). */
export function resultOf(workerId: string, attempt: number): string {
  return `${workerId}#${attempt}`;
}

export function parseResult(text: string): { workerId: string; attempt: number } | undefined {
  const i = text.lastIndexOf('#');
  if (i <= 0) return undefined;
  const attempt = Number(text.slice(i + 1));
  return Number.isInteger(attempt) ? { workerId: text.slice(0, i), attempt } : undefined;
}
