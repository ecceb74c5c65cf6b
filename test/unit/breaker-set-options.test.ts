import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ZonalError } from '../../src/errors';
import { Breaker, compileBreakerOptions, type BreakerOptions } from '../../src/resilience/breaker';

const START = compileBreakerOptions({ errorThresholdPercentage: 50, volumeThreshold: 10, rollingWindowMs: 10_000, rollingWindowBuckets: 10, resetTimeoutMs: 1_000 });

/** UNAVAILABLE says the dependency is down: it counts as a failure. */
const unavailable = (): Promise<never> => Promise.reject(new ZonalError('UNAVAILABLE', 'down'));
const ok = (): Promise<string> => Promise.resolve('ok');

describe('Breaker.setOptions (live thresholds)', () => {
  let breakers: Breaker[];

  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_700_000_000_000);
    breakers = [];
  });

  afterEach(() => {
    for (const breaker of breakers) breaker.close();
    vi.useRealTimers();
  });

  function make(options: BreakerOptions = START): Breaker {
    const breaker = new Breaker('dispatcher 10.0.0.1:50051', options);
    breakers.push(breaker);
    return breaker;
  }

  async function fail(breaker: Breaker, times: number): Promise<void> {
    for (let i = 0; i < times; i++) await breaker.fire(unavailable).catch(() => undefined);
  }

  it('a lower volumeThreshold lets 2 failing calls open it', async () => {
    const unchanged = make();
    await fail(unchanged, 2);
    expect(unchanged.state()).toBe('CLOSED'); // 2 calls are below volumeThreshold 10

    const lowered = make();
    lowered.setOptions({ ...START, volumeThreshold: 2 });
    expect(lowered.options.volumeThreshold).toBe(2);
    await fail(lowered, 2);
    expect(lowered.state()).toBe('OPEN');
    const call = vi.fn(ok);
    await expect(lowered.fire(call)).rejects.toMatchObject({ reason: 'CIRCUIT_OPEN' });
    expect(call).not.toHaveBeenCalled();
  });

  it('errorThresholdPercentage 100 never opens it, however many calls fail', async () => {
    const breaker = make();
    breaker.setOptions({ ...START, volumeThreshold: 2, errorThresholdPercentage: 100 });
    const call = vi.fn(unavailable);
    for (let i = 0; i < 50; i++) await breaker.fire(call).catch(() => undefined);
    expect(breaker.state()).toBe('CLOSED');
    expect(call).toHaveBeenCalledTimes(50);
  });

  it('a new resetTimeoutMs is used at the next opening: probeAtMs and the probe itself follow it', async () => {
    const breaker = make();
    breaker.setOptions({ ...START, volumeThreshold: 2, resetTimeoutMs: 5_000 });
    await fail(breaker, 2);
    expect(breaker.state()).toBe('OPEN');
    expect(breaker.probeAtMs()).toBe(Date.now() + 5_000);
    await expect(breaker.fire(ok)).rejects.toThrow(new Date(Date.now() + 5_000).toISOString());
    vi.advanceTimersByTime(4_999);
    expect(breaker.state()).toBe('OPEN');
    vi.advanceTimersByTime(1);
    expect(breaker.state()).toBe('HALF_OPEN');
    expect(breaker.probeAtMs()).toBeUndefined();
  });

  it('while OPEN, probeAtMs still tells when the probe will actually go through after resetTimeoutMs changed', async () => {
    const breaker = make({ ...START, volumeThreshold: 2 });
    await fail(breaker, 2);
    expect(breaker.state()).toBe('OPEN');
    breaker.setOptions({ ...START, volumeThreshold: 2, resetTimeoutMs: 60_000 });
    const probeAt = breaker.probeAtMs();
    expect(probeAt).toBeDefined();
    vi.advanceTimersByTime((probeAt ?? 0) - Date.now() - 1);
    expect(breaker.state()).toBe('OPEN'); // not yet: probeAtMs said later
    vi.advanceTimersByTime(1);
    expect(breaker.state()).toBe('HALF_OPEN');
  });

  it('keeps the state across setOptions: an open breaker stays open and still fails fast', async () => {
    const breaker = make({ ...START, volumeThreshold: 2 });
    await fail(breaker, 2);
    expect(breaker.state()).toBe('OPEN');
    breaker.setOptions({ ...START, volumeThreshold: 50, errorThresholdPercentage: 90 });
    expect(breaker.state()).toBe('OPEN');
    const call = vi.fn(ok);
    await expect(breaker.fire(call)).rejects.toMatchObject({ reason: 'CIRCUIT_OPEN' });
    expect(call).not.toHaveBeenCalled();
    // It still half-opens and a good probe closes it.
    vi.advanceTimersByTime(1_000);
    await expect(breaker.fire(ok)).resolves.toBe('ok');
    expect(breaker.state()).toBe('CLOSED');
  });

  it('keeps the failures already counted in the rolling window', async () => {
    const breaker = make();
    await fail(breaker, 2);
    breaker.setOptions({ ...START, volumeThreshold: 3 });
    expect(breaker.state()).toBe('CLOSED');
    await fail(breaker, 1); // 3 calls in the window now, all failed
    expect(breaker.state()).toBe('OPEN');
  });

  it('a shorter rollingWindowMs forgets old failures sooner', async () => {
    const breaker = make({ ...START, volumeThreshold: 3 });
    breaker.setOptions({ ...START, volumeThreshold: 3, rollingWindowMs: 1_000 });
    await fail(breaker, 2);
    vi.advanceTimersByTime(1_000); // a whole (new) window later
    await fail(breaker, 1);
    expect(breaker.state()).toBe('CLOSED');
    await fail(breaker, 2);
    expect(breaker.state()).toBe('OPEN');
  });

  it('fixes the number of buckets when the breaker is made', () => {
    const breaker = make();
    breaker.setOptions({ ...START, rollingWindowBuckets: 3, volumeThreshold: 4 });
    expect(breaker.options).toEqual({ ...START, volumeThreshold: 4 });
  });

  it('after close(), setOptions does nothing and does not throw', async () => {
    const breaker = make();
    breaker.close();
    expect(() => breaker.setOptions({ ...START, volumeThreshold: 1 })).not.toThrow();
    expect(breaker.options).toEqual(START);
    await expect(breaker.fire(ok)).rejects.toMatchObject({ reason: 'SHUTTING_DOWN' });
  });
});
