import { describe, expect, it } from 'vitest';
import { compileCoreOptions } from '../../src/core/options';
import { compileTaskSpec, DEFAULT_QUEUE, type RawSubmit } from '../../src/core/task-fields';
import { InvalidArgumentError, Status, ZonalError } from '../../src/errors';

const NOW = 1_700_000_000_000;
const DAY = 24 * 3600_000;
const options = compileCoreOptions({ maxPayloadBytes: 1024, defaultMaxAttempts: 4, defaultAttemptTimeoutMs: 30_000 });

function compile(raw: RawSubmit) {
  return compileTaskSpec(raw, options, NOW);
}

function thrown(raw: RawSubmit): unknown {
  try {
    compile(raw);
  } catch (err) {
    return err;
  }
  throw new Error(`expected ${JSON.stringify(raw)} to be rejected`);
}

describe('compileTaskSpec defaults', () => {
  it('fills every field for an empty request', () => {
    expect(compile({})).toEqual({
      queue: DEFAULT_QUEUE,
      priority: 0,
      payload: new Uint8Array(0),
      contentType: '',
      labels: {},
      preferredZone: '',
      producerZone: '',
      traceparent: '',
      tracestate: '',
      idempotencyKey: '',
      maxAttempts: 4,
      attemptTimeoutMs: 30_000,
      scheduleToStartTimeoutMs: 0,
      notBeforeMs: 0,
    });
    expect(DEFAULT_QUEUE).toBe('default');
  });

  it('0 and empty values mean "use the default"', () => {
    const spec = compile({ queue: '', maxAttempts: 0, attemptTimeoutMs: 0, payload: null });
    expect([spec.queue, spec.maxAttempts, spec.attemptTimeoutMs, spec.payload.byteLength]).toEqual(['default', 4, 30_000, 0]);
  });

  it('passes valid values through unchanged', () => {
    const payload = new Uint8Array([1, 2, 3]);
    const raw: RawSubmit = {
      payload,
      contentType: 'application/json',
      queue: 'emails.high-prio/eu:1',
      priority: -7,
      idempotencyKey: 'order-1',
      maxAttempts: 9,
      attemptTimeoutMs: 12_345,
      scheduleToStartTimeoutMs: 60_000,
      notBeforeMs: NOW + 1000,
      labels: { tenant: 'acme' },
      preferredZone: 'eu-west-1a',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      tracestate: 'congo=t61rcWkgMzE',
    };
    expect(compile(raw)).toEqual({
      payload,
      contentType: 'application/json',
      queue: 'emails.high-prio/eu:1',
      priority: -7,
      idempotencyKey: 'order-1',
      maxAttempts: 9,
      attemptTimeoutMs: 12_345,
      scheduleToStartTimeoutMs: 60_000,
      notBeforeMs: NOW + 1000,
      labels: { tenant: 'acme' },
      preferredZone: 'eu-west-1a',
      producerZone: '',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      tracestate: 'congo=t61rcWkgMzE',
    });
  });

  it.each<[string, RawSubmit]>([
    ['priority -1000', { priority: -1000 }],
    ['priority 1000', { priority: 1000 }],
    ['queue of 128 characters', { queue: 'q'.repeat(128) }],
    ['content type of 256 characters', { contentType: 'c'.repeat(256) }],
    ['idempotency key of 256 characters', { idempotencyKey: 'k'.repeat(256) }],
    ['max attempts 1000', { maxAttempts: 1000 }],
    ['attempt timeout of 30 days', { attemptTimeoutMs: 30 * DAY }],
    ['schedule-to-start of 30 days', { scheduleToStartTimeoutMs: 30 * DAY }],
    ['not before in one year', { notBeforeMs: NOW + 365 * DAY }],
    ['64 labels', { labels: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'v'])) }],
    ['a label of 1024 characters', { labels: { k: 'v'.repeat(1023) } }],
    ['payload at the limit', { payload: new Uint8Array(1024) }],
    ['a future traceparent version with more fields', { traceparent: '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra' }],
    ['a tracestate of 512 characters', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'k=' + 'v'.repeat(510) }],
  ])('accepts the boundary: %s', (_name, raw) => {
    expect(() => compile(raw)).not.toThrow();
  });
});

describe('compileTaskSpec rejects each bad field with INVALID_ARGUMENT naming the field', () => {
  it.each<[string, RawSubmit]>([
    ['queue', { queue: 'has space' }],
    ['queue', { queue: 'q'.repeat(129) }],
    ['queue', { queue: 'ünïcode' }],
    ['priority', { priority: 1001 }],
    ['priority', { priority: -1001 }],
    ['priority', { priority: 1.5 }],
    ['priority', { priority: Number.NaN }],
    ['content_type', { contentType: 'c'.repeat(257) }],
    ['idempotency_key', { idempotencyKey: 'k'.repeat(257) }],
    ['max_attempts', { maxAttempts: 1001 }],
    ['max_attempts', { maxAttempts: -1 }],
    ['max_attempts', { maxAttempts: 2.5 }],
    ['attempt_timeout_ms', { attemptTimeoutMs: -1 }],
    ['attempt_timeout_ms', { attemptTimeoutMs: 30 * DAY + 1 }],
    ['attempt_timeout_ms', { attemptTimeoutMs: Number.POSITIVE_INFINITY }],
    ['attempt_timeout_ms', { attemptTimeoutMs: 1.5 }],
    ['schedule_to_start_timeout_ms', { scheduleToStartTimeoutMs: -1 }],
    ['schedule_to_start_timeout_ms', { scheduleToStartTimeoutMs: 30 * DAY + 1 }],
    ['schedule_to_start_timeout_ms', { scheduleToStartTimeoutMs: Number.NaN }],
    ['not_before_unix_ms', { notBeforeMs: -1 }],
    ['not_before_unix_ms', { notBeforeMs: NOW + 365 * DAY + 1 }],
    ['not_before_unix_ms', { notBeforeMs: Number.NaN }],
    ['labels', { labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }],
    ['labels', { labels: { '': 'empty key' } }],
    ['labels', { labels: { k: 'v'.repeat(1024) } }],
    ['preferred_zone', { preferredZone: 'bad zone' }],
    ['preferred_zone', { preferredZone: 'z'.repeat(129) }],
    ['traceparent', { traceparent: 'not a traceparent' }],
    ['traceparent', { traceparent: '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01' }],
    ['traceparent', { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' }],
    ['traceparent', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01' }],
    ['traceparent', { traceparent: 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }],
    ['traceparent', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-' + 'x'.repeat(300) }],
    ['tracestate', { tracestate: 'k=' + 'v'.repeat(511) }],
    ['tracestate', { tracestate: 'k=v\n' }],
    ['tracestate', { tracestate: 'k=v' }],
    ['traceparent', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra' }],
  ])('%s: %j', (field, raw) => {
    const err = thrown(raw);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toBeInstanceOf(ZonalError);
    const e = err as InvalidArgumentError;
    expect(e.reason).toBe('INVALID_ARGUMENT');
    expect(e.code).toBe(Status.INVALID_ARGUMENT);
    expect(e.retryable).toBe(false);
    expect(e.message.startsWith(`${field}: `)).toBe(true);
    expect(e.toInfo()).toEqual({ code: Status.INVALID_ARGUMENT, reason: 'INVALID_ARGUMENT', message: e.message, retryable: false });
  });

  it('uses the configured default max attempts only when valid', () => {
    const spec = compileTaskSpec({}, compileCoreOptions({ defaultMaxAttempts: 1 }), NOW);
    expect(spec.maxAttempts).toBe(1);
  });
});

describe('payload size', () => {
  it('rejects a payload over maxPayloadBytes with PAYLOAD_TOO_LARGE (RESOURCE_EXHAUSTED)', () => {
    const err = thrown({ payload: new Uint8Array(1025) }) as ZonalError;
    expect(err).toBeInstanceOf(ZonalError);
    expect(err).not.toBeInstanceOf(InvalidArgumentError);
    expect(err.reason).toBe('PAYLOAD_TOO_LARGE');
    expect(err.code).toBe(Status.RESOURCE_EXHAUSTED);
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('payload is 1025 bytes; the limit is 1024');
  });

  it('checks the payload before the other fields', () => {
    const err = thrown({ payload: new Uint8Array(2000), queue: 'bad queue' }) as ZonalError;
    expect(err.reason).toBe('PAYLOAD_TOO_LARGE');
  });

  it('uses the default 4 MiB limit', () => {
    const defaults = compileCoreOptions();
    expect(() => compileTaskSpec({ payload: new Uint8Array(4 * 1024 * 1024) }, defaults, NOW)).not.toThrow();
    expect(() => compileTaskSpec({ payload: new Uint8Array(4 * 1024 * 1024 + 1) }, defaults, NOW)).toThrow(/PAYLOAD|payload is 4194305 bytes/);
  });
});
