import { systemClock, type Clock } from '../core/clock';

/**
 * How many retries a client may add on top of its first attempts, like
 * gRPC's retry throttling and Finagle's RetryBudget: when a dispatcher is
 * down, retries stop multiplying the load once the budget is spent.
 */
export interface RetryBudgetOptions {
  /** Tokens each first attempt deposits; one retry costs one token, so 0.1 allows retries on up to 10 % of calls. */
  retryRatio: number;
  /** Most tokens the bucket holds (and holds at start): the longest burst of retries. */
  maxTokens: number;
  /** Tokens added per second whatever the traffic, so a client that calls rarely can still retry. */
  minRetriesPerSecond: number;
}

export const DEFAULT_RETRY_BUDGET: RetryBudgetOptions = { retryRatio: 0.1, maxTokens: 10, minRetriesPerSecond: 1 };

export function checkRetryBudget(o: RetryBudgetOptions): void {
  const check = (name: string, value: number, min: number, max: number): void => {
    if (!Number.isFinite(value) || value < min || value > max) throw new RangeError(`retryBudget.${name} must be between ${min} and ${max}, got ${value}`);
  };
  check('retryRatio', o.retryRatio, 0, 1_000);
  check('maxTokens', o.maxTokens, 0, 1_000_000);
  check('minRetriesPerSecond', o.minRetriesPerSecond, 0, 1_000_000);
}

/**
 * A token bucket per client. Invariant: 0 <= tokens <= maxTokens; a retry is
 * allowed only when a whole token is there, and takes it. Time comes from the
 * clock, so tests move it by hand.
 */
export class RetryBudget {
  private balance: number;
  private refilledAtMs: number;

  constructor(
    private readonly options: RetryBudgetOptions,
    private readonly clock: Clock = systemClock,
  ) {
    checkRetryBudget(options);
    this.balance = options.maxTokens;
    this.refilledAtMs = clock.nowMs();
  }

  /** Records a first attempt of a logical call. */
  deposit(): void {
    this.refill();
    this.balance = Math.min(this.options.maxTokens, this.balance + this.options.retryRatio);
  }

  /** Takes one token for a retry; false, and nothing taken, when less than one is left. */
  tryWithdraw(): boolean {
    this.refill();
    // The epsilon absorbs float drift from adding 0.1 ten times (0.9999999999999999).
    if (this.balance < 1 - 1e-9) return false;
    this.balance = Math.max(0, this.balance - 1);
    return true;
  }

  /** Tokens left now. */
  tokens(): number {
    this.refill();
    return this.balance;
  }

  private refill(): void {
    const now = this.clock.nowMs();
    const elapsedMs = Math.max(0, now - this.refilledAtMs);
    this.refilledAtMs = now;
    if (elapsedMs > 0 && this.options.minRetriesPerSecond > 0) {
      this.balance = Math.min(this.options.maxTokens, this.balance + (elapsedMs * this.options.minRetriesPerSecond) / 1000);
    }
  }
}
