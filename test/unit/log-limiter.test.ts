import { afterEach, describe, expect, it, vi } from 'vitest';
import { LogLimiter, RateLimitedLog } from '../../src/log';

describe('LogLimiter', () => {
  it('lets maxLines through per window and reports the held-back count when the next window starts', () => {
    const limiter = new LogLimiter(2, 10_000);
    expect([0, 1, 2, 3].map((t) => limiter.take(t))).toEqual([
      { log: true, suppressedBefore: 0 },
      { log: true, suppressedBefore: 0 },
      { log: false, suppressedBefore: 0 },
      { log: false, suppressedBefore: 0 },
    ]);
    expect(limiter.take(9_999)).toEqual({ log: false, suppressedBefore: 0 });
    expect(limiter.take(10_000)).toEqual({ log: true, suppressedBefore: 3 });
    expect(limiter.take(20_000)).toEqual({ log: true, suppressedBefore: 0 });
  });
});

describe('LogLimiter flush', () => {
  it('hands over the held-back count once its window has ended, and only once', () => {
    const limiter = new LogLimiter(1, 1_000);
    limiter.take(0);
    limiter.take(10);
    limiter.take(20);
    expect(limiter.flushDueMs).toBe(1_000);
    expect(limiter.flush(999)).toBe(0);
    expect(limiter.flush(1_000)).toBe(2);
    expect(limiter.flush(1_001)).toBe(0);
    expect(limiter.flushDueMs).toBeUndefined();
    // The next window does not report them a second time.
    expect(limiter.take(1_500)).toEqual({ log: true, suppressedBefore: 0 });
  });
});

describe('RateLimitedLog', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function rig(): { log: RateLimitedLog; lines: string[] } {
    const lines: string[] = [];
    const log = new RateLimitedLog(new LogLimiter(2, 10_000), (count) => lines.push(`held back ${count}`), () => Date.now());
    return { log, lines };
  }

  it('reports the held-back count at the end of the window even if no later line comes', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { log, lines } = rig();
    for (let i = 0; i < 5; i++) log.write(() => lines.push(`line ${i}`));
    expect(lines).toEqual(['line 0', 'line 1']);
    vi.advanceTimersByTime(9_999);
    expect(lines).toEqual(['line 0', 'line 1']);
    vi.advanceTimersByTime(1);
    expect(lines).toEqual(['line 0', 'line 1', 'held back 3']);
    // Nothing is pending any more, and the count is not repeated.
    expect(vi.getTimerCount()).toBe(0);
    log.write(() => lines.push('line 5'));
    expect(lines.at(-1)).toBe('line 5');
  });

  it('a later line carries the count when it comes first; no double report', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { log, lines } = rig();
    for (let i = 0; i < 3; i++) log.write(() => lines.push(`line ${i}`));
    vi.setSystemTime(1_000_000 + 10_000); // the clock moved, the timer has not run yet
    log.write(() => lines.push('line 3'));
    expect(lines).toEqual(['line 0', 'line 1', 'held back 1', 'line 3']);
    vi.runAllTimers();
    expect(lines).toEqual(['line 0', 'line 1', 'held back 1', 'line 3']);
  });

  it('close() reports what is held back and leaves no timer', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { log, lines } = rig();
    for (let i = 0; i < 4; i++) log.write(() => lines.push(`line ${i}`));
    expect(vi.getTimerCount()).toBe(1);
    log.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(lines).toEqual(['line 0', 'line 1', 'held back 2']);
    log.close();
    expect(lines).toHaveLength(3);
  });

  it('its timer never keeps the process alive (real timers)', () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((k) => k === 'Timeout').length;
    const before = timers();
    const { log, lines } = rig();
    for (let i = 0; i < 3; i++) log.write(() => undefined);
    // A flush timer is pending (lines are held back), but only ref'd timers are listed: it is unref'd.
    expect(timers()).toBe(before);
    log.close();
    expect(lines).toEqual(['held back 1']);
    expect(timers()).toBe(before);
  });
});
