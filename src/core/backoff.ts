import type { Random } from './clock';

export interface BackoffPolicy {
  initialMs: number;
  multiplier: number;
  maxMs: number;
  /** 0..1: the share of each delay that is randomised ("equal jitter" at 0.5, full jitter at 1). */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0.2 };

/**
 * Delay before retry number `retry` (1 for the first retry): exponential,
 * capped, with the jittered share drawn from `random` so tests can pin it.
 */
export function backoffDelayMs(policy: BackoffPolicy, retry: number, random: Random): number {
  // initialMs 0 stays 0: 0 * Infinity (a growth factor that overflowed) would be NaN.
  const exp = policy.initialMs <= 0 ? 0 : Math.min(policy.maxMs, policy.initialMs * Math.pow(policy.multiplier, Math.max(0, retry - 1)));
  const jittered = exp * policy.jitter;
  return Math.round(exp - jittered + jittered * random());
}
