import { describe, expect, it } from 'vitest';
import { compileCallPolicy } from '../../../src/client/call-policy';
import { compileRuntimeDocument, DEFAULT_BASELINE, RuntimeSchemaError, type RuntimeBaseline } from '../../../src/config/runtime-schema';
import { compileSloThresholds } from '../../../src/config/slo-thresholds';
import { compileCoreOptions } from '../../../src/core/options';
import { compileBreakerOptions } from '../../../src/resilience/breaker';

/** A startup baseline that differs from the built-in defaults, so layering over it is visible. */
const BASELINE: RuntimeBaseline = {
  core: compileCoreOptions({ drainGraceMs: 7_000, keepalive: { minIntervalMs: 1_000, maxIntervalMs: 20_000 }, backoff: { initialMs: 300 } }),
  call: compileCallPolicy({ callTimeoutMs: 3_000, backoff: { maxMs: 900 } }),
  breaker: compileBreakerOptions({ volumeThreshold: 20 }),
  slo: compileSloThresholds({ defaultP99Ms: 400, pairs: { 'zone-a->zone-b': { p99Ms: 120 } } }),
  logLevel: 'warn',
};

function compile(doc: unknown, baseline: RuntimeBaseline = BASELINE) {
  return compileRuntimeDocument(doc, baseline);
}

/** The RuntimeSchemaError message a document is refused with. */
function refusal(doc: unknown): string {
  try {
    compile(doc);
  } catch (err) {
    expect(err).toBeInstanceOf(RuntimeSchemaError);
    expect((err as Error).name).toBe('RuntimeSchemaError');
    return (err as Error).message;
  }
  throw new Error(`document was accepted: ${JSON.stringify(doc)}`);
}

describe('compileRuntimeDocument: layering over the baseline', () => {
  it('a document with only a version puts the baseline in force', () => {
    expect(compile({ version: 1 })).toEqual({ ...BASELINE, version: 1, publishedAtMs: undefined });
    expect(compile({ version: 1 }, DEFAULT_BASELINE)).toEqual({ ...DEFAULT_BASELINE, version: 1, publishedAtMs: undefined });
  });

  it('keepalive keys layer over the baseline keepalive; the keys left out keep their baseline values', () => {
    const s = compile({ version: 2, keepalive: { minIntervalMs: 700, lbIdleWindowMs: 30_000 } });
    expect(s.core.keepalive).toEqual({ ...BASELINE.core.keepalive, minIntervalMs: 700, lbIdleWindowMs: 30_000 });
    expect(s.core.keepalive.maxIntervalMs).toBe(20_000);
    expect(s.core.drainGraceMs).toBe(7_000);
  });

  it('top-level core keys and core backoff layer over the baseline core', () => {
    const s = compile({ version: 2, drainGraceMs: 1_000, defaultMaxAttempts: 5, maxSlotsPerSession: 64, zoneSpilloverDelayMs: 250, backoff: { jitter: 0 } });
    expect(s.core).toEqual({
      ...BASELINE.core,
      drainGraceMs: 1_000,
      defaultMaxAttempts: 5,
      maxSlotsPerSession: 64,
      zoneSpilloverDelayMs: 250,
      backoff: { ...BASELINE.core.backoff, jitter: 0 },
    });
    expect(s.core.backoff.initialMs).toBe(300);
  });

  it('call keys (and call.backoff) layer over the baseline call policy', () => {
    const s = compile({ version: 2, call: { maxAttempts: 2, backoff: { initialMs: 10 } } });
    expect(s.call).toEqual({ ...BASELINE.call, maxAttempts: 2, backoff: { ...BASELINE.call.backoff, initialMs: 10 } });
    expect(s.call.callTimeoutMs).toBe(3_000);
    expect(s.call.backoff.maxMs).toBe(900);
  });

  it('breaker keys layer over the baseline breaker', () => {
    const s = compile({ version: 2, breaker: { errorThresholdPercentage: 75, resetTimeoutMs: 2_000 } });
    expect(s.breaker).toEqual({ ...BASELINE.breaker, errorThresholdPercentage: 75, resetTimeoutMs: 2_000 });
    expect(s.breaker.volumeThreshold).toBe(20);
  });

  it('slo pairs are added to the baseline pairs, and the default p99 is kept unless given', () => {
    const s = compile({ version: 2, slo: { pairs: { 'zone-b->zone-c': { p99Ms: 80 } } } });
    expect(s.slo).toEqual({ defaultP99Ms: 400, pairs: { 'zone-a->zone-b': { p99Ms: 120 }, 'zone-b->zone-c': { p99Ms: 80 } } });
    expect(compile({ version: 2, slo: { defaultP99Ms: 90 } }).slo).toEqual({ ...BASELINE.slo, defaultP99Ms: 90 });
  });

  it('logLevel replaces the baseline level and is kept when left out', () => {
    expect(compile({ version: 2, logLevel: 'debug' }).logLevel).toBe('debug');
    expect(compile({ version: 2 }).logLevel).toBe('warn');
  });

  it('does not change the baseline it layers over', () => {
    const before = structuredClone(BASELINE);
    compile({ version: 2, keepalive: { minIntervalMs: 700 }, backoff: { jitter: 0 }, call: { backoff: { initialMs: 1 } }, slo: { pairs: { 'x->y': { p99Ms: 5 } } } });
    expect(BASELINE).toEqual(before);
  });
});

describe('compileRuntimeDocument: version and publishedAt', () => {
  it.each<[string, unknown, RegExp]>([
    ['missing', {}, /^version: /],
    ['0', { version: 0 }, /^version: .*>=1/],
    ['1.5', { version: 1.5 }, /^version: .*int/],
    ['a string', { version: '3' }, /^version: .*expected number/],
  ])('refuses a version that is %s', (_label, doc, message) => {
    expect(refusal(doc)).toMatch(message);
  });

  it('refuses a document that is not an object', () => {
    expect(refusal(null)).toMatch(/^\(document\): /);
    expect(refusal([1])).toMatch(/^\(document\): /);
    expect(refusal('version: 1')).toMatch(/^\(document\): /);
  });

  it('accepts publishedAt as ISO with an offset, ISO in UTC, or epoch ms, and yields publishedAtMs', () => {
    expect(compile({ version: 1, publishedAt: '2026-11-22T03:00:00+02:00' }).publishedAtMs).toBe(Date.UTC(2026, 10, 22, 1, 0, 0));
    expect(compile({ version: 1, publishedAt: '2026-11-22T03:00:00Z' }).publishedAtMs).toBe(Date.UTC(2026, 10, 22, 3, 0, 0));
    expect(compile({ version: 1, publishedAt: 1_700_000_000_000 }).publishedAtMs).toBe(1_700_000_000_000);
    expect(compile({ version: 1 }).publishedAtMs).toBeUndefined();
  });

  it('refuses a publishedAt without a zone, a negative one and a non-date', () => {
    expect(refusal({ version: 1, publishedAt: '2026-11-22T03:00:00' })).toMatch(/^publishedAt: /);
    expect(refusal({ version: 1, publishedAt: -1 })).toMatch(/^publishedAt: /);
    expect(refusal({ version: 1, publishedAt: 'yesterday' })).toMatch(/^publishedAt: /);
  });
});

describe('compileRuntimeDocument: unknown keys and wrong types', () => {
  it('refuses an unknown top-level key, naming it', () => {
    expect(refusal({ version: 1, drainGraceMS: 100 })).toBe('(document): Unrecognized key: "drainGraceMS"');
  });

  it('refuses startup-only settings (they are not runtime keys)', () => {
    expect(refusal({ version: 1, sequenceWindow: 10 })).toContain('"sequenceWindow"');
    expect(refusal({ version: 1, maxPayloadBytes: 10 })).toContain('"maxPayloadBytes"');
  });

  it.each<[string, unknown, string]>([
    ['keepalive', { keepalive: { lbIdleWindowMS: 30_000 } }, 'keepalive: Unrecognized key: "lbIdleWindowMS"'],
    ['backoff', { backoff: { jiter: 0.1 } }, 'backoff: Unrecognized key: "jiter"'],
    ['call.backoff', { call: { backoff: { maxMS: 1 } } }, 'call.backoff: Unrecognized key: "maxMS"'],
    ['breaker', { breaker: { rollingWindowBuckets: 5 } }, 'breaker: Unrecognized key: "rollingWindowBuckets"'],
    ['slo pair', { slo: { pairs: { 'a->b': { p99Ms: 5, p99: 5 } } } }, 'slo.pairs.a->b: Unrecognized key: "p99"'],
  ])('refuses a misspelt nested key in %s, naming its path', (_label, doc, message) => {
    expect(refusal({ version: 1, ...(doc as object) })).toBe(message);
  });

  it.each<[string, unknown]>([
    ['keepalive.minIntervalMs', { keepalive: { minIntervalMs: '500' } }],
    ['drainGraceMs', { drainGraceMs: null }],
    ['defaultMaxAttempts', { defaultMaxAttempts: 2.5 }],
    ['call.maxAttempts', { call: { maxAttempts: true } }],
    ['breaker.volumeThreshold', { breaker: { volumeThreshold: 1.5 } }],
    ['slo.defaultP99Ms', { slo: { defaultP99Ms: '250ms' } }],
    ['keepalive', { keepalive: 5 }],
  ])('refuses a wrong type at %s, naming it', (path, doc) => {
    expect(refusal({ version: 1, ...(doc as object) })).toMatch(new RegExp(`^${path.replace(/\./g, '\\.')}: `));
  });

  it('refuses a logLevel outside debug, info, warn, error', () => {
    expect(refusal({ version: 1, logLevel: 'verbose' })).toMatch(/^logLevel: /);
    expect(refusal({ version: 1, logLevel: 'silent' })).toMatch(/^logLevel: /);
  });
});

describe('compileRuntimeDocument: ranges come from the compile functions', () => {
  it.each<[string, object, string]>([
    ['keepalive.minIntervalMs > maxIntervalMs', { keepalive: { minIntervalMs: 30_000 } }, 'keepalive.maxIntervalMs must be between 30000 and 3600000, got 20000'],
    ['keepalive.lbIdleWindowMs too small', { keepalive: { lbIdleWindowMs: 999 } }, 'keepalive.lbIdleWindowMs must be between 1000 and 86400000, got 999'],
    ['defaultMaxAttempts 0', { defaultMaxAttempts: 0 }, 'defaultMaxAttempts must be between 1 and 1000, got 0'],
    ['drainGraceMs negative', { drainGraceMs: -1 }, 'drainGraceMs must be between 0 and 3600000, got -1'],
    ['backoff.jitter 2', { backoff: { jitter: 2 } }, 'backoff.jitter must be between 0 and 1, got 2'],
    ['breaker.errorThresholdPercentage 101', { breaker: { errorThresholdPercentage: 101 } }, 'breaker.errorThresholdPercentage must be between 0 and 100, got 101'],
    ['breaker.resetTimeoutMs 0', { breaker: { resetTimeoutMs: 0 } }, 'breaker.resetTimeoutMs must be between 1 and 3600000, got 0'],
    ['call.maxAttempts 0', { call: { maxAttempts: 0 } }, 'call.maxAttempts must be between 1 and 100, got 0'],
    ['call.backoff.jitter 2', { call: { backoff: { jitter: 2 } } }, 'call.backoff.jitter must be between 0 and 1, got 2'],
    ['slo.defaultP99Ms 0', { slo: { defaultP99Ms: 0 } }, 'slo.defaultP99Ms must be between 1 and 600000, got 0'],
    ['an slo pair p99 of 0', { slo: { pairs: { 'a->b': { p99Ms: 0 } } } }, 'slo.pairs["a->b"].p99Ms must be between 1 and 600000, got 0'],
  ])('%s is refused with a message naming the key', (_label, doc, message) => {
    expect(refusal({ version: 1, ...doc })).toBe(message);
  });

  it.each(['zone-a-zone-b', 'zone-a->', '->zone-b', 'a b->c', 'a->b->c'])('refuses the slo pair key "%s" (must be from->to)', (pair) => {
    expect(refusal({ version: 1, slo: { pairs: { [pair]: { p99Ms: 10 } } } })).toBe(`slo.pairs key "${pair}" must look like "from-zone->to-zone" (letters, digits, . _ -)`);
  });

  it('a range is checked on the merged value, so the same document can pass over one baseline and fail over another', () => {
    // The built-in minIntervalMs is 500, so a maxIntervalMs of 900 fits above it.
    expect(compile({ version: 1, keepalive: { maxIntervalMs: 900 } }, DEFAULT_BASELINE).core.keepalive.maxIntervalMs).toBe(900);
    // This baseline's minIntervalMs is 1 000: the same document is refused.
    expect(refusal({ version: 1, keepalive: { maxIntervalMs: 900 } })).toBe('keepalive.maxIntervalMs must be between 1000 and 3600000, got 900');
  });
});
