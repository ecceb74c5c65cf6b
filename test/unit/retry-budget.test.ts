import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock';
import { DEFAULT_RETRY_BUDGET, RetryBudget } from '../../src/client/retry-budget';

describe('RetryBudget', () => {
  it('starts full and allows maxTokens retries, then none', () => {
    const budget = new RetryBudget({ retryRatio: 0.1, maxTokens: 3, minRetriesPerSecond: 0 }, new ManualClock());
    expect(budget.tokens()).toBe(3);
    expect([budget.tryWithdraw(), budget.tryWithdraw(), budget.tryWithdraw()]).toEqual([true, true, true]);
    expect(budget.tryWithdraw()).toBe(false);
    expect(budget.tokens()).toBe(0);
  });

  it('earns one retry per 1 / retryRatio first attempts', () => {
    const budget = new RetryBudget({ retryRatio: 0.1, maxTokens: 10, minRetriesPerSecond: 0 }, new ManualClock());
    while (budget.tryWithdraw());
    for (let i = 0; i < 9; i++) budget.deposit();
    expect(budget.tryWithdraw()).toBe(false);
    budget.deposit();
    // Ten deposits of 0.1 make one token despite float drift.
    expect(budget.tryWithdraw()).toBe(true);
    expect(budget.tryWithdraw()).toBe(false);
  });

  it('never holds more than maxTokens', () => {
    const budget = new RetryBudget({ retryRatio: 0.5, maxTokens: 2, minRetriesPerSecond: 0 }, new ManualClock());
    for (let i = 0; i < 100; i++) budget.deposit();
    expect(budget.tokens()).toBe(2);
  });

  it('refills minRetriesPerSecond with time alone, up to the cap', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ retryRatio: 0, maxTokens: 5, minRetriesPerSecond: 2 }, clock);
    while (budget.tryWithdraw());
    clock.advance(499);
    expect(budget.tryWithdraw()).toBe(false);
    clock.advance(1);
    expect(budget.tryWithdraw()).toBe(true);
    clock.advance(60_000);
    expect(budget.tokens()).toBe(5);
  });

  it('a time that goes backwards takes nothing away', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ retryRatio: 0, maxTokens: 5, minRetriesPerSecond: 1 }, clock);
    budget.tryWithdraw();
    clock.advance(-10_000);
    expect(budget.tokens()).toBe(4);
  });

  it('refuses settings out of range with the setting name', () => {
    expect(() => new RetryBudget({ ...DEFAULT_RETRY_BUDGET, retryRatio: -1 })).toThrow(/retryBudget.retryRatio/);
    expect(() => new RetryBudget({ ...DEFAULT_RETRY_BUDGET, maxTokens: Number.NaN })).toThrow(/retryBudget.maxTokens/);
  });
});
