import { describe, expect, it } from 'vitest';
import { backoffDelayMs, DEFAULT_BACKOFF, type BackoffPolicy } from '../../src/core/backoff';
import { errorInfo } from '../../src/errors';
import { createHarness, fixedRandom, seededRandom, submitAndAssign, T0 } from '../support/core-harness';

const NO_JITTER: BackoffPolicy = { initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0 };

describe('backoffDelayMs', () => {
  it('defaults to 1 s initial, x2, 60 s cap, 20% jitter', () => {
    expect(DEFAULT_BACKOFF).toEqual({ initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0.2 });
  });

  it('grows exponentially and is capped', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 20].map((n) => backoffDelayMs(NO_JITTER, n, () => 0.5));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });

  it('treats retry 0 (and below) like the first retry', () => {
    expect(backoffDelayMs(NO_JITTER, 0, () => 0)).toBe(1000);
    expect(backoffDelayMs(NO_JITTER, -3, () => 0)).toBe(1000);
  });

  it('honours other multipliers', () => {
    const p: BackoffPolicy = { initialMs: 100, multiplier: 3, maxMs: 5000, jitter: 0 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelayMs(p, n, () => 0))).toEqual([100, 300, 900, 2700, 5000]);
    const flat: BackoffPolicy = { initialMs: 250, multiplier: 1, maxMs: 5000, jitter: 0 };
    expect([1, 10, 100].map((n) => backoffDelayMs(flat, n, () => 0))).toEqual([250, 250, 250]);
  });

  it('randomises only the jittered share, using the injected random', () => {
    const p: BackoffPolicy = { initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0.2 };
    expect(backoffDelayMs(p, 1, () => 0)).toBe(800);
    expect(backoffDelayMs(p, 1, () => 0.5)).toBe(900);
    expect(backoffDelayMs(p, 1, () => 0.999)).toBe(1000);
    expect(backoffDelayMs(p, 3, () => 0)).toBe(3200);
    expect(backoffDelayMs(p, 3, () => 0.25)).toBe(3400);
  });

  it('full jitter (1) spans 0 .. the exponential delay', () => {
    const p: BackoffPolicy = { initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 1 };
    expect(backoffDelayMs(p, 2, () => 0)).toBe(0);
    expect(backoffDelayMs(p, 2, () => 0.5)).toBe(1000);
  });

  it('never exceeds the cap and never drops below (1 - jitter) of it, whatever random says', () => {
    const p: BackoffPolicy = { initialMs: 500, multiplier: 2, maxMs: 10_000, jitter: 0.3 };
    const random = seededRandom(42);
    for (let retry = 1; retry <= 40; retry++) {
      for (let i = 0; i < 25; i++) {
        const d = backoffDelayMs(p, retry, random);
        const exp = Math.min(10_000, 500 * 2 ** (retry - 1));
        expect(Number.isInteger(d)).toBe(true);
        expect(d).toBeGreaterThanOrEqual(Math.round(exp * 0.7));
        expect(d).toBeLessThanOrEqual(exp);
      }
    }
  });

  it('draws exactly one random number per delay', () => {
    const random = fixedRandom(0.3);
    backoffDelayMs(DEFAULT_BACKOFF, 1, random);
    backoffDelayMs(DEFAULT_BACKOFF, 7, random);
    expect(random.calls).toBe(2);
  });

  it('is deterministic for a seeded random', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const seqA = Array.from({ length: 10 }, (_, i) => backoffDelayMs(DEFAULT_BACKOFF, i + 1, a));
    const seqB = Array.from({ length: 10 }, (_, i) => backoffDelayMs(DEFAULT_BACKOFF, i + 1, b));
    expect(seqA).toEqual(seqB);
  });

  it('a zero initial delay stays 0 even when the growth factor overflows', () => {
    const p: BackoffPolicy = { initialMs: 0, multiplier: 10, maxMs: 60_000, jitter: 0.5 };
    expect(backoffDelayMs(p, 1, () => 0.5)).toBe(0);
    expect(backoffDelayMs(p, 400, () => 0.5)).toBe(0);
  });

  it('a huge retry number is capped, not Infinity', () => {
    expect(backoffDelayMs(NO_JITTER, 5000, () => 0)).toBe(60_000);
  });
});

describe('backoff in the engine', () => {
  it('retryable worker failures wait 1x, 2x, 4x initial (with jitter from the injected random)', () => {
    const random = fixedRandom(0);
    const h = createHarness({ random });
    const w = h.open({ slots: 5 });
    const task = h.submit({ maxAttempts: 4 });
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      if (attempt > 1) h.advanceTo(task.notBeforeMs);
      const [a] = h.dispatch();
      expect(a).toMatchObject({ attempt });
      w.fail(a!, a!.version + 1, { ...errorInfo('HANDLER_FAILED', 'again'), retryable: true });
      waits.push(task.notBeforeMs - h.now);
    }
    // jitter 0.2 with random() = 0: 80% of 1000, 2000, 4000
    expect(waits).toEqual([800, 1600, 3200]);
    expect(random.calls).toBe(3);
  });

  it('uses the configured policy', () => {
    const h = createHarness({ core: { backoff: { initialMs: 50, multiplier: 3, maxMs: 100, jitter: 0 } } });
    const w = h.open({ slots: 5 });
    const task = h.submit({ maxAttempts: 5 });
    const waits: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      if (attempt > 1) h.advanceTo(task.notBeforeMs);
      const [a] = h.dispatch();
      w.fail(a!, a!.version + 1, null);
      waits.push(task.notBeforeMs - h.now);
    }
    expect(waits).toEqual([50, 100, 100]);
  });

  it('attempt timeouts back off too; lease loss does not', () => {
    const random = fixedRandom(0.5);
    const h = createHarness({ random });
    const w = h.open({ slots: 5 });
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 100 });
    h.advance(100);
    expect(a.task.notBeforeMs).toBe(T0 + 100 + 900);
    expect(random.calls).toBe(1);

    h.advanceTo(a.task.notBeforeMs);
    const [b] = h.dispatch();
    expect(b).toMatchObject({ taskId: a.taskId, sessionId: w.id, attempt: 2 });
    h.advance(10);
    h.close(w);
    expect([a.task.state, a.task.attempt, a.task.notBeforeMs]).toEqual(['PENDING', 3, h.now]);
    expect(random.calls).toBe(1);
  });

  it('a zero initial delay retries at once however many attempts are made (no NaN deadline)', () => {
    const h = createHarness({ core: { backoff: { initialMs: 0, multiplier: 10, maxMs: 1000, jitter: 0.5 } } });
    const w = h.open({ slots: 1 });
    const task = h.submit({ maxAttempts: 400 });
    for (let attempt = 1; attempt < 400; attempt++) {
      const [a] = h.dispatch();
      expect(a).toMatchObject({ attempt });
      w.fail(a!, a!.version + 1, null);
      expect(task.notBeforeMs).toBe(h.now);
    }
    const [last] = h.dispatch();
    w.fail(last!, last!.version + 1, null);
    expect([task.state, task.attempt]).toEqual(['FAILED', 400]);
  });

  it('a task is not dispatched before its backoff ends', () => {
    const h = createHarness({ random: fixedRandom(0.5) });
    const w = h.open({ slots: 5 });
    const a = submitAndAssign(h, w);
    w.fail(a, 3, null);
    expect(h.engine.nextWakeAtMs()).toBe(T0 + 900);
    expect(h.dispatch()).toEqual([]);
    h.advance(899);
    expect(h.dispatch()).toEqual([]);
    h.advance(1);
    expect(h.dispatch()).toMatchObject([{ taskId: a.taskId, attempt: 2 }]);
  });
});
