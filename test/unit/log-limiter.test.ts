import { describe, expect, it } from 'vitest';
import { LogLimiter } from '../../src/log';

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
