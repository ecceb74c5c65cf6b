import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ZonalError } from '../../src/errors';
import { Breaker, compileBreakerOptions, type CircuitState } from '../../src/resilience/breaker';
import { reportCircuitState } from '../../src/telemetry/client-metrics';
import { METRICS } from '../../src/telemetry/metric-names';

const OPTIONS = compileBreakerOptions({ errorThresholdPercentage: 50, volumeThreshold: 3, rollingWindowMs: 10_000, rollingWindowBuckets: 10, resetTimeoutMs: 1_000 });

const unavailable = (): Promise<never> => Promise.reject(new ZonalError('UNAVAILABLE', 'down'));
const invalid = (): Promise<never> => Promise.reject(new ZonalError('INVALID_ARGUMENT', 'bad request'));
const ok = (): Promise<string> => Promise.resolve('ok');

describe('Breaker (opossum behind the resilience seam)', () => {
  let breaker: Breaker;
  let transitions: string[];

  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(1_700_000_000_000);
    breaker = new Breaker('dispatcher 10.0.0.1:50051', OPTIONS);
    transitions = [];
    breaker.onStateChange((state, previous) => transitions.push(`${previous}->${state}`));
  });

  afterEach(() => {
    breaker.close();
    vi.useRealTimers();
  });

  async function failTimes(n: number, fn: () => Promise<never> = unavailable): Promise<void> {
    for (let i = 0; i < n; i++) await breaker.fire(fn).catch(() => undefined);
  }

  it('opens on the failure rate, fails fast while open, half-opens after resetTimeoutMs and closes after a successful probe', async () => {
    await failTimes(2);
    expect(breaker.state()).toBe('CLOSED'); // below volumeThreshold
    await failTimes(1);
    expect(breaker.state()).toBe('OPEN');
    expect(breaker.probeAtMs()).toBe(Date.now() + 1_000);

    const call = vi.fn(ok);
    const error = await breaker.fire(call).catch((e: unknown) => e);
    expect(call).not.toHaveBeenCalled();
    expect(error).toBeInstanceOf(ZonalError);
    expect(error).toMatchObject({ reason: 'CIRCUIT_OPEN', retryable: false, code: 14 });
    expect((error as Error).message).toContain('dispatcher 10.0.0.1:50051');
    expect((error as Error).message).toContain(new Date(1_700_000_001_000).toISOString());

    vi.advanceTimersByTime(999);
    expect(breaker.state()).toBe('OPEN');
    vi.advanceTimersByTime(1);
    expect(breaker.state()).toBe('HALF_OPEN');

    // One probe goes through; others fail fast while it is in flight.
    let answer: (value: string) => void = () => undefined;
    const probe = breaker.fire(() => new Promise<string>((resolve) => (answer = resolve)));
    const other = vi.fn(ok);
    await expect(breaker.fire(other)).rejects.toMatchObject({ reason: 'CIRCUIT_OPEN', message: expect.stringContaining('half-open') });
    expect(other).not.toHaveBeenCalled();
    answer('probe ok');
    await expect(probe).resolves.toBe('probe ok');
    expect(breaker.state()).toBe('CLOSED');
    await expect(breaker.fire(ok)).resolves.toBe('ok');
    expect(transitions).toEqual(['CLOSED->OPEN', 'OPEN->HALF_OPEN', 'HALF_OPEN->CLOSED']);
  });

  it('recovered() closes an open breaker at once (a probe made outside it succeeded), and the old reset timer does nothing later', async () => {
    await failTimes(3);
    expect(breaker.state()).toBe('OPEN');
    breaker.recovered();
    expect(breaker.state()).toBe('CLOSED');
    expect(await breaker.fire(ok)).toBe('ok');
    // The failures that opened it were forgotten: one more does not open it again.
    await failTimes(1);
    vi.advanceTimersByTime(2_000);
    expect(breaker.state()).toBe('CLOSED');
    expect(transitions).toEqual(['CLOSED->OPEN', 'OPEN->CLOSED']);
    breaker.recovered();
    expect(transitions).toHaveLength(2);
  });

  it('a failed probe opens it again for another resetTimeoutMs', async () => {
    await failTimes(3);
    vi.advanceTimersByTime(1_000);
    expect(breaker.state()).toBe('HALF_OPEN');
    await expect(breaker.fire(unavailable)).rejects.toMatchObject({ reason: 'UNAVAILABLE' });
    expect(breaker.state()).toBe('OPEN');
    expect(breaker.probeAtMs()).toBe(Date.now() + 1_000);
    vi.advanceTimersByTime(1_000);
    await breaker.fire(ok);
    expect(transitions).toEqual(['CLOSED->OPEN', 'OPEN->HALF_OPEN', 'HALF_OPEN->OPEN', 'OPEN->HALF_OPEN', 'HALF_OPEN->CLOSED']);
  });

  it('forgets the failures that opened it once it closes', async () => {
    await failTimes(3);
    vi.advanceTimersByTime(1_000);
    await breaker.fire(ok);
    expect(breaker.state()).toBe('CLOSED');
    // With the old window kept, this would be 4 failures of 5 calls and open it again at once.
    await failTimes(1);
    expect(breaker.state()).toBe('CLOSED');
    await failTimes(2);
    expect(breaker.state()).toBe('OPEN');
  });

  it('counts only failures inside the rolling window', async () => {
    await failTimes(2);
    vi.advanceTimersByTime(10_000);
    await failTimes(2);
    expect(breaker.state()).toBe('CLOSED');
    await failTimes(1);
    expect(breaker.state()).toBe('OPEN');
  });

  it('stays closed while at most errorThresholdPercentage of calls fail', async () => {
    for (let i = 0; i < 10; i++) {
      await breaker.fire(ok);
      await breaker.fire(unavailable).catch(() => undefined);
    }
    expect(breaker.state()).toBe('CLOSED');
  });

  it('never opens on answers from a healthy dependency such as INVALID_ARGUMENT, and passes them through', async () => {
    for (let i = 0; i < 20; i++) await expect(breaker.fire(invalid)).rejects.toMatchObject({ reason: 'INVALID_ARGUMENT' });
    await failTimes(20, () => Promise.reject(new ZonalError('TASK_NOT_FOUND', 'x')));
    await failTimes(20, () => Promise.reject(new TypeError('a bug, not an outage')));
    expect(breaker.state()).toBe('CLOSED');
    expect(transitions).toEqual([]);
  });

  it('an INVALID_ARGUMENT answer to the probe closes it: the dependency answered', async () => {
    await failTimes(3);
    vi.advanceTimersByTime(1_000);
    await expect(breaker.fire(invalid)).rejects.toMatchObject({ reason: 'INVALID_ARGUMENT' });
    expect(breaker.state()).toBe('CLOSED');
  });

  it('takes a different failure classifier (for a non-gRPC dependency)', async () => {
    const store = new Breaker('store', OPTIONS, { countsAsFailure: (e) => e instanceof Error && e.message === 'connection refused' });
    try {
      for (let i = 0; i < 3; i++) await store.fire(() => Promise.reject(new Error('connection refused'))).catch(() => undefined);
      expect(store.state()).toBe('OPEN');
    } finally {
      store.close();
    }
  });

  it('reports its state into a gauge: 0 closed, 1 half-open, 2 open', async () => {
    const values: number[] = [];
    const stop = reportCircuitState(breaker, { set: (labels, value) => (expect(labels).toEqual({ target: 't' }), values.push(value)) }, { target: 't' });
    await failTimes(3);
    vi.advanceTimersByTime(1_000);
    await breaker.fire(ok);
    stop();
    await failTimes(3);
    expect(values).toEqual([0, 2, 1, 0]);
    expect(METRICS.clientCircuitState.name).toBe('zonal_client_circuit_state');
  });

  it('close() leaves no timer behind, and later calls fail with SHUTTING_DOWN', async () => {
    await failTimes(3); // OPEN: opossum's reset timer is pending too
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    breaker.close();
    expect(vi.getTimerCount()).toBe(0);
    await expect(breaker.fire(ok)).rejects.toMatchObject({ reason: 'SHUTTING_DOWN' });
    breaker.close();
  });

  it('a listener that throws does not break the breaker', async () => {
    breaker.onStateChange(() => {
      throw new Error('listener bug');
    });
    const seen: CircuitState[] = [];
    breaker.onStateChange((s) => seen.push(s));
    await failTimes(3);
    expect(seen).toEqual(['OPEN']);
  });
});

describe('compileBreakerOptions', () => {
  it('refuses settings out of range, naming them', () => {
    expect(() => compileBreakerOptions({ errorThresholdPercentage: 101 })).toThrow(/breaker.errorThresholdPercentage/);
    expect(() => compileBreakerOptions({ volumeThreshold: 2.5 })).toThrow(/breaker.volumeThreshold/);
    expect(() => compileBreakerOptions({ resetTimeoutMs: 0 })).toThrow(/breaker.resetTimeoutMs/);
    expect(() => compileBreakerOptions({ rollingWindowMs: 10, rollingWindowBuckets: 100 })).toThrow(/rollingWindowBuckets/);
  });
});
