import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { callOnce, callWithRetry, compileCallPolicy, DEFAULT_CALL_POLICY, type CallPolicy } from '../../src/client/call-policy';
import { RetryBudget } from '../../src/client/retry-budget';
import { backoffDelayMs } from '../../src/core/backoff';
import { ManualClock } from '../../src/core/clock';
import { Status, ZonalError, type Reason } from '../../src/errors';
import { fromServiceError as fromServiceErrorOf, indicatesUnhealthy, isRetryable, REASON_METADATA_KEY, toServiceError } from '../../src/protocol/grpc-errors';

function serviceError(code: number, reason?: string): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  if (reason !== undefined) metadata.set(REASON_METADATA_KEY, reason);
  return Object.assign(new Error(`${code}`), { code, details: reason === undefined ? 'transport' : `${reason}: from the dispatcher`, metadata });
}

const POLICY: CallPolicy = compileCallPolicy({ maxAttempts: 4, callTimeoutMs: 300, backoff: { initialMs: 50, multiplier: 2, maxMs: 1_000, jitter: 0.5 } });
const random = (): number => 0.25;

/** An attempt that fails with `errors` in turn, then answers 'ok'. */
function scripted(errors: unknown[]): { attempt: (n: number) => Promise<string>; calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    attempt: (n) => {
      calls.push(n);
      const error = errors[n - 1];
      return error === undefined ? Promise.resolve('ok') : Promise.reject(error);
    },
  };
}

describe('retry classification (protocol/grpc-errors)', () => {
  it.each<[string, unknown, boolean]>([
    ['ZonalError UNAVAILABLE', new ZonalError('UNAVAILABLE', 'x'), true],
    ['ZonalError DEADLINE_EXCEEDED', new ZonalError('DEADLINE_EXCEEDED', 'x'), true],
    ['ZonalError STORE_UNAVAILABLE', new ZonalError('STORE_UNAVAILABLE', 'x'), true],
    ['ZonalError CALL_FAILED', new ZonalError('CALL_FAILED', 'x'), false],
    ['ZonalError INVALID_ARGUMENT', new ZonalError('INVALID_ARGUMENT', 'x'), false],
    ['ZonalError CIRCUIT_OPEN', new ZonalError('CIRCUIT_OPEN', 'x'), false],
    ['raw UNAVAILABLE', serviceError(Status.UNAVAILABLE), true],
    ['raw DEADLINE_EXCEEDED', serviceError(Status.DEADLINE_EXCEEDED), true],
    ['raw INTERNAL', serviceError(Status.INTERNAL), false],
    ['raw UNAVAILABLE with reason SHUTTING_DOWN', serviceError(Status.UNAVAILABLE, 'SHUTTING_DOWN'), true],
    ['raw INVALID_ARGUMENT with its reason', serviceError(Status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'), false],
    ['a plain Error', new Error('bug'), false],
    ['a string', 'nope', false],
  ])('isRetryable(%s) is %s', (_name, error, expected) => {
    expect(isRetryable(error)).toBe(expected);
  });

  it.each<[Reason | number, boolean]>([
    ['UNAVAILABLE', true],
    ['DEADLINE_EXCEEDED', true],
    ['STORE_UNAVAILABLE', true],
    ['INTERNAL', true],
    ['INVALID_ARGUMENT', false],
    ['TASK_NOT_FOUND', false],
    ['PAYLOAD_TOO_LARGE', false],
    ['CIRCUIT_OPEN', false],
    [Status.UNKNOWN, true],
    [Status.CANCELLED, false],
    [Status.UNIMPLEMENTED, false],
  ])('indicatesUnhealthy(%s) is %s', (what, expected) => {
    const error = typeof what === 'number' ? new ZonalError('CALL_FAILED', 'x', { code: what }) : new ZonalError(what, 'x');
    expect(indicatesUnhealthy(error)).toBe(expected);
  });

  it('indicatesUnhealthy ignores errors that are not gRPC or Zonal errors', () => {
    expect(indicatesUnhealthy(new TypeError('bug'))).toBe(false);
    expect(indicatesUnhealthy(serviceError(Status.UNAVAILABLE))).toBe(true);
  });
});

describe('compileCallPolicy', () => {
  it('fills defaults, nested ones too', () => {
    const p = compileCallPolicy({ backoff: { initialMs: 10 }, retryBudget: { maxTokens: 3 } });
    expect(p.callTimeoutMs).toBe(DEFAULT_CALL_POLICY.callTimeoutMs);
    expect(p.backoff).toEqual({ ...DEFAULT_CALL_POLICY.backoff, initialMs: 10 });
    expect(p.retryBudget).toEqual({ ...DEFAULT_CALL_POLICY.retryBudget, maxTokens: 3 });
  });

  it('refuses values out of range, naming the setting', () => {
    expect(() => compileCallPolicy({ callTimeoutMs: 0 })).toThrow(/call.callTimeoutMs/);
    expect(() => compileCallPolicy({ maxAttempts: 1.5 })).toThrow(/call.maxAttempts/);
    expect(() => compileCallPolicy({ backoff: { jitter: 2 } })).toThrow(/call.backoff.jitter/);
    expect(() => compileCallPolicy({ retryBudget: { retryRatio: -0.1 } })).toThrow(/retryBudget.retryRatio/);
  });
});

describe('callWithRetry', () => {
  it('retries retryable failures with the backoff of each retry, then returns the answer', async () => {
    const { attempt, calls } = scripted([new ZonalError('UNAVAILABLE', 'a'), new ZonalError('DEADLINE_EXCEEDED', 'b')]);
    const slept: number[] = [];
    const result = await callWithRetry(POLICY, attempt, { random, sleep: async (ms) => void slept.push(ms) });
    expect(result).toBe('ok');
    expect(calls).toEqual([1, 2, 3]);
    expect(slept).toEqual([backoffDelayMs(POLICY.backoff, 1, random), backoffDelayMs(POLICY.backoff, 2, random)]);
    expect(slept[1]!).toBeGreaterThan(slept[0]!);
  });

  it('gives up after maxAttempts and throws the last error', async () => {
    const last = new ZonalError('UNAVAILABLE', 'fourth');
    const { attempt, calls } = scripted([new ZonalError('UNAVAILABLE', '1'), new ZonalError('UNAVAILABLE', '2'), new ZonalError('UNAVAILABLE', '3'), last]);
    await expect(callWithRetry(POLICY, attempt, { random, sleep: async () => undefined })).rejects.toBe(last);
    expect(calls).toEqual([1, 2, 3, 4]);
  });

  it.each<Reason>(['INVALID_ARGUMENT', 'CALL_FAILED', 'CIRCUIT_OPEN'])('does not retry %s', async (reason) => {
    const error = new ZonalError(reason, 'no');
    const { attempt, calls } = scripted([error]);
    const sleep = vi.fn(async () => undefined);
    await expect(callWithRetry(POLICY, attempt, { sleep })).rejects.toBe(error);
    expect(calls).toEqual([1]);
    expect(sleep).not.toHaveBeenCalled();
  });

  it('does not retry once the retry budget is empty; each logical call deposits', async () => {
    const budget = new RetryBudget({ retryRatio: 0.5, maxTokens: 1, minRetriesPerSecond: 0 }, new ManualClock());
    const sleep = async (): Promise<void> => undefined;
    // One token: the first call retries once and then gets its answer.
    const first = scripted([new ZonalError('UNAVAILABLE', 'x')]);
    await expect(callWithRetry(POLICY, first.attempt, { budget, sleep })).resolves.toBe('ok');
    expect(first.calls).toEqual([1, 2]);
    // Its deposit was capped at 1 (the bucket was full), and the retry took that token.
    expect(budget.tokens()).toBeCloseTo(0, 5);
    const second = scripted([new ZonalError('UNAVAILABLE', 'y')]);
    const thrown = await callWithRetry(POLICY, second.attempt, { budget, sleep }).catch((e: unknown) => e);
    expect(thrown).toMatchObject({ reason: 'UNAVAILABLE', message: 'y' });
    expect(second.calls).toEqual([1]);
    // 0.5 deposited by the second call: the third call deposits 0.5 more and may retry once.
    const third = scripted([new ZonalError('UNAVAILABLE', 'z')]);
    await expect(callWithRetry(POLICY, third.attempt, { budget, sleep })).resolves.toBe('ok');
    expect(third.calls).toEqual([1, 2]);
  });
});

describe('callOnce', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gives every retry a fresh deadline, callTimeoutMs after that attempt starts', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_700_000_000_000);
    const seen: { startedAt: number; deadline: number }[] = [];
    const method = (_request: unknown, options: grpc.CallOptions, callback: (e: grpc.ServiceError | null, r?: string) => void): grpc.ClientUnaryCall => {
      const startedAt = Date.now();
      seen.push({ startedAt, deadline: (options.deadline as Date).getTime() });
      if (seen.length === 1) {
        // The first attempt outlives its deadline.
        vi.setSystemTime(startedAt + POLICY.callTimeoutMs);
        callback(serviceError(Status.DEADLINE_EXCEEDED));
      } else callback(null, 'answer');
      return {} as grpc.ClientUnaryCall;
    };
    const sleep = async (ms: number): Promise<void> => void vi.setSystemTime(Date.now() + ms);
    const result = await callWithRetry(POLICY, () => callOnce(method, {}, POLICY.callTimeoutMs), { random, sleep });
    expect(result).toBe('answer');
    expect(seen).toHaveLength(2);
    for (const s of seen) expect(s.deadline - s.startedAt).toBe(POLICY.callTimeoutMs);
    expect(seen[1]!.deadline - seen[0]!.deadline).toBe(POLICY.callTimeoutMs + backoffDelayMs(POLICY.backoff, 1, random));
  });
});

describe('retry pushback (grpc-retry-pushback-ms)', () => {
  function limited(pushback: string): grpc.ServiceError {
    const error = serviceError(Status.RESOURCE_EXHAUSTED, 'RATE_LIMITED');
    error.metadata.set('grpc-retry-pushback-ms', pushback);
    return error;
  }

  it('waits exactly the pushback the dispatcher sent instead of the backoff, then succeeds', async () => {
    const slept: number[] = [];
    const { attempt, calls } = scripted([fromServiceErrorOf(limited('730')), fromServiceErrorOf(limited('15'))]);
    const result = await callWithRetry(POLICY, attempt, { random, sleep: async (ms) => void slept.push(ms) });
    expect(result).toBe('ok');
    expect(calls).toEqual([1, 2, 3]);
    expect(slept).toEqual([730, 15]);
  });

  it('does not retry on a negative or unreadable pushback (gRFC A6)', async () => {
    for (const hint of ['-1', 'soon']) {
      const slept: number[] = [];
      const { attempt, calls } = scripted([fromServiceErrorOf(limited(hint))]);
      await expect(callWithRetry(POLICY, attempt, { random, sleep: async (ms) => void slept.push(ms) })).rejects.toMatchObject({ reason: 'RATE_LIMITED', retryPushbackMs: -1 });
      expect(calls).toEqual([1]);
      expect(slept).toEqual([]);
    }
  });

  it('waits at most 60 s however long the hint', async () => {
    const slept: number[] = [];
    const { attempt } = scripted([fromServiceErrorOf(limited('900000'))]);
    await callWithRetry(POLICY, attempt, { random, sleep: async (ms) => void slept.push(ms) });
    expect(slept).toEqual([60_000]);
  });

  it('a dispatcher-side ZonalError with a pushback travels as the trailing metadata the SDK reads', () => {
    const status = toServiceError(new ZonalError('RATE_LIMITED', 'slow down', { retryPushbackMs: 1234.2 }));
    expect(status.metadata?.get('grpc-retry-pushback-ms')).toEqual(['1235']);
    const back = fromServiceErrorOf(Object.assign(new Error('x'), { code: status.code!, details: status.details!, metadata: status.metadata! }) as grpc.ServiceError);
    expect(back.reason).toBe('RATE_LIMITED');
    expect(back.retryPushbackMs).toBe(1235);
    expect(back.retryable).toBe(true);
  });
});
