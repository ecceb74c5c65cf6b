import type * as grpc from '@grpc/grpc-js';
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff';
import type { Random } from '../core/clock';
import { ZonalError } from '../errors';
import { fromServiceError, isRetryable } from '../protocol/grpc-errors';
import { checkRetryBudget, DEFAULT_RETRY_BUDGET, type RetryBudget, type RetryBudgetOptions } from './retry-budget';

/** How the SDK calls the dispatcher: every call has a deadline, every retry a fresh one. */
export interface CallPolicy {
  /** Deadline of one attempt of a unary call, counted from when that attempt starts. */
  callTimeoutMs: number;
  /** Attempts per logical call, including the first. */
  maxAttempts: number;
  /** Delay before each retry: exponential, capped, jittered. */
  backoff: BackoffPolicy;
  /** Retries the client may add across all its calls (a token bucket). */
  retryBudget: RetryBudgetOptions;
}

/** What a user passes: any subset, nested ones included. */
export type CallPolicyInput = Partial<Omit<CallPolicy, 'backoff' | 'retryBudget'>> & {
  backoff?: Partial<BackoffPolicy>;
  retryBudget?: Partial<RetryBudgetOptions>;
};

export const DEFAULT_CALL_POLICY: CallPolicy = {
  callTimeoutMs: 10_000,
  maxAttempts: 4,
  backoff: { initialMs: 50, multiplier: 2, maxMs: 2_000, jitter: 0.5 },
  retryBudget: DEFAULT_RETRY_BUDGET,
};

function check(name: string, value: number, min: number, max: number): void {
  if (!Number.isFinite(value) || value < min || value > max) throw new RangeError(`call.${name} must be between ${min} and ${max}, got ${value}`);
}

/** Defaults, then range checks; the compiled policy is used as is from then on. */
export function compileCallPolicy(input: CallPolicyInput = {}): CallPolicy {
  const d = DEFAULT_CALL_POLICY;
  const o: CallPolicy = {
    ...d,
    ...input,
    backoff: { ...d.backoff, ...input.backoff },
    retryBudget: { ...d.retryBudget, ...input.retryBudget },
  };
  check('callTimeoutMs', o.callTimeoutMs, 1, 24 * 3_600_000);
  check('maxAttempts', o.maxAttempts, 1, 100);
  if (!Number.isInteger(o.maxAttempts)) throw new RangeError(`call.maxAttempts must be a whole number, got ${o.maxAttempts}`);
  check('backoff.initialMs', o.backoff.initialMs, 0, 3_600_000);
  check('backoff.multiplier', o.backoff.multiplier, 1, 10);
  check('backoff.maxMs', o.backoff.maxMs, o.backoff.initialMs, 24 * 3_600_000);
  check('backoff.jitter', o.backoff.jitter, 0, 1);
  checkRetryBudget(o.retryBudget);
  return o;
}

export function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms);
}

type Unary<Req, Res> = (request: Req, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Res) => void) => grpc.ClientUnaryCall;

/** One unary call attempt with its own deadline, `timeoutMs` from now; errors come back as ZonalError. */
export function callOnce<Req, Res>(method: Unary<Req, Res>, request: Req, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, { deadline: deadlineIn(timeoutMs) }, (error, response) => {
      if (error) reject(fromServiceError(error));
      else resolve(response as Res);
    });
  });
}

/** What `callWithRetry` takes from outside, so tests can pin it. */
export interface RetrySeams {
  /** Shared by every call of one client; when it is empty, failures are not retried. */
  budget?: RetryBudget;
  random?: Random;
  sleep?: (ms: number) => Promise<void>;
}

/** The longest pushback the SDK waits before one retry; a longer hint waits this long (the retry may be refused again). */
export const MAX_PUSHBACK_MS = 60_000;

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `attempt` (given its number, 1 for the first) until it succeeds, fails
 * with an error `isRetryable` refuses (CIRCUIT_OPEN among them), runs out of
 * attempts or of retry budget; then throws the last error. Retries wait an
 * exponential backoff with jitter, or the dispatcher's retry pushback when
 * the error carried one (grpc-retry-pushback-ms; negative: no retry). Each attempt must make its own deadline
 * (`callOnce` does). Only safe for idempotent calls: every submit carries an
 * idempotency key, so a retried SubmitBatch never creates a duplicate.
 */
export async function callWithRetry<T>(policy: CallPolicy, attempt: (n: number) => Promise<T>, seams: RetrySeams = {}): Promise<T> {
  const { budget, random = Math.random, sleep = realSleep } = seams;
  budget?.deposit();
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (!isRetryable(err) || n >= policy.maxAttempts) throw err;
      // The dispatcher's pushback (RATE_LIMITED) replaces the backoff; a negative one means do not retry.
      const pushbackMs = err instanceof ZonalError ? err.retryPushbackMs : undefined;
      if (pushbackMs !== undefined && pushbackMs < 0) throw err;
      if (budget !== undefined && !budget.tryWithdraw()) throw err;
      await sleep(pushbackMs !== undefined ? Math.min(pushbackMs, MAX_PUSHBACK_MS) : backoffDelayMs(policy.backoff, n, random));
    }
  }
}
