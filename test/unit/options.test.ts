import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF } from '../../src/core/backoff';
import { KEEPALIVE_DEFAULTS } from '../../src/core/keepalive-policy';
import { compileCoreOptions, CORE_DEFAULTS, type CoreOptions, type CoreOptionsInput } from '../../src/core/options';

type Input = CoreOptionsInput;

describe('compileCoreOptions defaults', () => {
  it('returns the documented defaults for no input', () => {
    expect(compileCoreOptions()).toEqual({
      keepalive: { minIntervalMs: 500, maxIntervalMs: 15_000, lbIdleWindowMs: 60_000, deadPeerDetectMs: 45_000, heartbeatBudgetPerSec: 2_000, baseIdleMs: 5_000 },
      drainGraceMs: 5_000,
      defaultMaxAttempts: 3,
      defaultAttemptTimeoutMs: 300_000,
      maxPayloadBytes: 4 * 1024 * 1024,
      maxBatchTasks: 10_000,
      maxSlotsPerSession: 10_000,
      idempotencyRetentionMs: 24 * 3600_000,
      backoff: DEFAULT_BACKOFF,
      sequenceWindow: 256,
      maxSessionAgeMs: 30 * 60_000,
      minSessionAgeToMoveMs: 2_000,
      zoneSpilloverDelayMs: 0,
      taskLeaseMs: 10_000,
    });
    expect(compileCoreOptions({})).toEqual(CORE_DEFAULTS);
  });

  it('merges a partial backoff over the default one', () => {
    expect(compileCoreOptions({ backoff: { jitter: 0 } as CoreOptions['backoff'] }).backoff).toEqual({ ...DEFAULT_BACKOFF, jitter: 0 });
  });

  it('merges a partial keepalive over the default one', () => {
    expect(compileCoreOptions({ keepalive: { baseIdleMs: 9_000 } }).keepalive).toEqual({ ...KEEPALIVE_DEFAULTS, baseIdleMs: 9_000 });
  });

  it('does not share or mutate the defaults', () => {
    const a = compileCoreOptions({ keepalive: { baseIdleMs: 60_000 } });
    a.backoff.initialMs = 5;
    a.keepalive.minIntervalMs = 7;
    expect(CORE_DEFAULTS.keepalive.baseIdleMs).toBe(5_000);
    expect(CORE_DEFAULTS.keepalive.minIntervalMs).toBe(500);
    expect(CORE_DEFAULTS.backoff.initialMs).toBe(1000);
    expect(compileCoreOptions().backoff.initialMs).toBe(1000);
  });
});

describe('compileCoreOptions range checks', () => {
  it.each<[string, Input, string]>([
    ['keepalive.minIntervalMs', { keepalive: { minIntervalMs: 0 } }, 'keepalive.minIntervalMs must be between 1 and 3600000, got 0'],
    ['keepalive.maxIntervalMs', { keepalive: { minIntervalMs: 1000, maxIntervalMs: 999 } }, 'keepalive.maxIntervalMs must be between 1000 and 3600000, got 999'],
    ['keepalive.lbIdleWindowMs', { keepalive: { lbIdleWindowMs: 999 } }, 'keepalive.lbIdleWindowMs must be between 1000 and 86400000, got 999'],
    ['keepalive.heartbeatBudgetPerSec', { keepalive: { heartbeatBudgetPerSec: 0 } }, 'keepalive.heartbeatBudgetPerSec must be between 0.01 and 10000000, got 0'],
    ['keepalive.baseIdleMs', { keepalive: { baseIdleMs: 0 } }, 'keepalive.baseIdleMs must be between 1 and 86400000, got 0'],
    ['drainGraceMs', { drainGraceMs: -1 }, 'drainGraceMs must be between 0 and 3600000, got -1'],
    ['drainGraceMs', { drainGraceMs: 3_600_001 }, 'drainGraceMs must be between 0 and 3600000, got 3600001'],
    ['defaultMaxAttempts', { defaultMaxAttempts: 0 }, 'defaultMaxAttempts must be between 1 and 1000, got 0'],
    ['defaultMaxAttempts', { defaultMaxAttempts: 1001 }, 'defaultMaxAttempts must be between 1 and 1000, got 1001'],
    ['defaultAttemptTimeoutMs', { defaultAttemptTimeoutMs: 0 }, 'defaultAttemptTimeoutMs must be between 1 and 604800000, got 0'],
    ['defaultAttemptTimeoutMs', { defaultAttemptTimeoutMs: 604_800_001 }, 'defaultAttemptTimeoutMs must be between 1 and 604800000, got 604800001'],
    ['maxPayloadBytes', { maxPayloadBytes: 0 }, 'maxPayloadBytes must be between 1 and 67108864, got 0'],
    ['maxPayloadBytes', { maxPayloadBytes: 64 * 1024 * 1024 + 1 }, 'maxPayloadBytes must be between 1 and 67108864, got 67108865'],
    ['maxBatchTasks', { maxBatchTasks: 0 }, 'maxBatchTasks must be between 1 and 100000, got 0'],
    ['maxBatchTasks', { maxBatchTasks: 100_001 }, 'maxBatchTasks must be between 1 and 100000, got 100001'],
    ['maxSlotsPerSession', { maxSlotsPerSession: 0 }, 'maxSlotsPerSession must be between 1 and 100000, got 0'],
    ['maxSlotsPerSession', { maxSlotsPerSession: 100_001 }, 'maxSlotsPerSession must be between 1 and 100000, got 100001'],
    ['idempotencyRetentionMs', { idempotencyRetentionMs: 999 }, 'idempotencyRetentionMs must be between 1000 and 31536000000, got 999'],
    ['idempotencyRetentionMs', { idempotencyRetentionMs: 365 * 24 * 3600_000 + 1 }, 'idempotencyRetentionMs must be between 1000 and 31536000000, got 31536000001'],
    ['sequenceWindow', { sequenceWindow: 0 }, 'sequenceWindow must be between 1 and 100000, got 0'],
    ['sequenceWindow', { sequenceWindow: 100_001 }, 'sequenceWindow must be between 1 and 100000, got 100001'],
    ['maxSessionAgeMs', { maxSessionAgeMs: -1 }, 'maxSessionAgeMs must be between 0 and 2592000000, got -1'],
    ['minSessionAgeToMoveMs', { minSessionAgeToMoveMs: 3_600_001 }, 'minSessionAgeToMoveMs must be between 0 and 3600000, got 3600001'],
  ])('%s out of range: %j', (_name, input, message) => {
    expect(() => compileCoreOptions(input)).toThrow(new RangeError(message));
  });

  it.each<[string, Partial<CoreOptions['backoff']>, string]>([
    ['backoff.initialMs', { initialMs: -1 }, 'backoff.initialMs must be between 0 and 3600000, got -1'],
    ['backoff.initialMs', { initialMs: 3_600_001, maxMs: 3_600_001 }, 'backoff.initialMs must be between 0 and 3600000, got 3600001'],
    ['backoff.multiplier', { multiplier: 0.5 }, 'backoff.multiplier must be between 1 and 10, got 0.5'],
    ['backoff.multiplier', { multiplier: 11 }, 'backoff.multiplier must be between 1 and 10, got 11'],
    ['backoff.maxMs', { initialMs: 5000, maxMs: 4999 }, 'backoff.maxMs must be between 5000 and 86400000, got 4999'],
    ['backoff.maxMs', { maxMs: 24 * 3600_000 + 1 }, 'backoff.maxMs must be between 1000 and 86400000, got 86400001'],
    ['backoff.jitter', { jitter: -0.1 }, 'backoff.jitter must be between 0 and 1, got -0.1'],
    ['backoff.jitter', { jitter: 1.1 }, 'backoff.jitter must be between 0 and 1, got 1.1'],
  ])('%s out of range: %j', (_name, backoff, message) => {
    expect(() => compileCoreOptions({ backoff: backoff as CoreOptions['backoff'] })).toThrow(new RangeError(message));
  });

  it('refuses caps below the minimum interval, naming the settings to change', () => {
    expect(() => compileCoreOptions({ keepalive: { minIntervalMs: 5_000, deadPeerDetectMs: 9_000 } })).toThrow(/interval cap \(3000 ms.*below minIntervalMs \(5000 ms\)/);
  });

  it.each(['drainGraceMs', 'defaultMaxAttempts', 'defaultAttemptTimeoutMs', 'maxPayloadBytes', 'sequenceWindow'] as const)(
    '%s rejects NaN and Infinity',
    (key) => {
      expect(() => compileCoreOptions({ [key]: Number.NaN })).toThrow(RangeError);
      expect(() => compileCoreOptions({ [key]: Number.POSITIVE_INFINITY })).toThrow(new RegExp(`^${key} must be between`));
    },
  );

  it.each(['defaultMaxAttempts', 'maxPayloadBytes', 'maxBatchTasks', 'maxSlotsPerSession', 'sequenceWindow'] as const)(
    '%s must be a whole number',
    (key) => {
      expect(() => compileCoreOptions({ [key]: 2.5 })).toThrow(new RangeError(`${key} must be a whole number between 1 and ${key === 'defaultMaxAttempts' ? 1000 : key === 'maxPayloadBytes' ? 67108864 : 100000}, got 2.5`));
    },
  );

  it('accepts every boundary value', () => {
    const low: CoreOptions = {
      keepalive: { minIntervalMs: 1, maxIntervalMs: 1, lbIdleWindowMs: 1000, deadPeerDetectMs: 3, heartbeatBudgetPerSec: 1, baseIdleMs: 1 },
      drainGraceMs: 0,
      defaultMaxAttempts: 1,
      defaultAttemptTimeoutMs: 1,
      maxPayloadBytes: 1,
      maxBatchTasks: 1,
      maxSlotsPerSession: 1,
      idempotencyRetentionMs: 1000,
      sequenceWindow: 1,
      maxSessionAgeMs: 0,
      minSessionAgeToMoveMs: 0,
      zoneSpilloverDelayMs: 0,
      taskLeaseMs: 1_000,
      backoff: { initialMs: 0, multiplier: 1, maxMs: 0, jitter: 0 },
    };
    expect(compileCoreOptions(low)).toEqual(low);
    const high: CoreOptions = {
      keepalive: { minIntervalMs: 3_600_000, maxIntervalMs: 3_600_000, lbIdleWindowMs: 24 * 3_600_000, deadPeerDetectMs: 24 * 3_600_000, heartbeatBudgetPerSec: 10_000_000, baseIdleMs: 24 * 3_600_000 },
      drainGraceMs: 3_600_000,
      defaultMaxAttempts: 1000,
      defaultAttemptTimeoutMs: 7 * 24 * 3600_000,
      maxPayloadBytes: 64 * 1024 * 1024,
      maxBatchTasks: 100_000,
      maxSlotsPerSession: 100_000,
      idempotencyRetentionMs: 365 * 24 * 3600_000,
      sequenceWindow: 100_000,
      maxSessionAgeMs: 30 * 24 * 3600_000,
      minSessionAgeToMoveMs: 3_600_000,
      zoneSpilloverDelayMs: 3_600_000,
      taskLeaseMs: 600_000,
      backoff: { initialMs: 3_600_000, multiplier: 10, maxMs: 24 * 3600_000, jitter: 1 },
    };
    expect(compileCoreOptions(high)).toEqual(high);
  });

});
