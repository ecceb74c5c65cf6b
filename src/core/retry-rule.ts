import { backoffDelayMs, type BackoffPolicy } from './backoff';
import type { Random } from './clock';
import type { TaskRecord } from './task-fields';
import type { ErrorInfo } from '../errors';

export type RetryDecision =
  | { kind: 'retry'; attempt: number; notBeforeMs: number; error: ErrorInfo }
  | { kind: 'fail'; error: ErrorInfo };

/**
 * What follows the end of an attempt that did not finish the task: the next
 * attempt (after backoff when `withBackoff`), or failure once `maxAttempts`
 * is reached. Pure; the engine and the sweep both decide with it.
 */
export function decideRetry(
  task: Pick<TaskRecord, 'attempt' | 'maxAttempts'>,
  cause: ErrorInfo,
  withBackoff: boolean,
  nowMs: number,
  backoff: BackoffPolicy,
  random: Random,
): RetryDecision {
  if (task.attempt >= task.maxAttempts) {
    return { kind: 'fail', error: { ...cause, message: `${cause.message} (gave up after ${task.attempt} of ${task.maxAttempts} attempts)` } };
  }
  const attempt = task.attempt + 1;
  return { kind: 'retry', attempt, notBeforeMs: withBackoff ? nowMs + backoffDelayMs(backoff, attempt - 1, random) : nowMs, error: cause };
}
