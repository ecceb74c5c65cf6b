import { z } from 'zod';
import { compileCoreOptions, type CoreOptions, type CoreOptionsInput } from '../core/options';
import { compileCallPolicy, type CallPolicy } from '../client/call-policy';
import { compileBreakerOptions, DEFAULT_BREAKER_OPTIONS, type BreakerOptions } from '../resilience/breaker';
import { compileSloThresholds, type SloThresholds } from './slo-thresholds';
import { currentLogLevel, type LogLevel } from '../log';

/**
 * The one schema of everything that may change while Zonal runs. A runtime
 * document is YAML or JSON:
 *
 *   version: 42                    # required, whole number >= 1, strictly increasing
 *   publishedAt: 2026-11-22T03:00:00Z   # optional; measures publish -> apply time
 *   keepalive: { minIntervalMs, maxIntervalMs, lbIdleWindowMs, deadPeerDetectMs, heartbeatBudgetPerSec, baseIdleMs }
 *   drainGraceMs, defaultMaxAttempts, defaultAttemptTimeoutMs, backoff: { initialMs, multiplier, maxMs, jitter }
 *   zoneSpilloverDelayMs, maxSlotsPerSession, maxSessionAgeMs, taskLeaseMs
 *   call: { callTimeoutMs, maxAttempts, backoff: {...} }            # SDK clients
 *   breaker: { errorThresholdPercentage, volumeThreshold, resetTimeoutMs, rollingWindowMs }
 *   slo: { defaultP99Ms, defaultP95Ms?, pairs: { "zone-a->zone-b": { p99Ms, p95Ms? } } }
 *   logLevel: debug | info | warn | error
 *
 * Every key is optional except `version`; a key left out keeps its startup
 * value (flag, environment or built-in default). Unknown keys are refused,
 * so a misspelt key fails loudly instead of being ignored. Shapes and types
 * are checked here; ranges are checked by the same compile functions the
 * programmatic API uses (core/options.ts, call-policy.ts, breaker.ts,
 * slo-thresholds.ts), so every range lives in exactly one place.
 *
 * Startup-only settings (ports, addresses, store, data dir, the config
 * source itself and its public keys, sequenceWindow, payload and batch
 * limits, and TLS once it exists) are in ServerOptions and are refused here
 * as unknown keys: they need a restart.
 */

/**
 * Largest version a document may carry. Versions only grow, so a document
 * at the bound is the last one that can ever apply: the bound sits far
 * above any counter, epoch-millisecond (~1.8e12) or yyyymmddHHMMSS (~2e13)
 * scheme, and far below 2^53-1, so a slip of the keyboard is refused rather
 * than ending all updates. How to recover from a needlessly high version:
 * docs/configuration.md ("Versions").
 */
export const MAX_CONFIG_VERSION = 1e15;

const ms = z.number().finite();
const count = z.number().int();
const backoff = z.strictObject({ initialMs: ms, multiplier: z.number().finite(), maxMs: ms, jitter: z.number().finite() }).partial();

export const RUNTIME_DOCUMENT_SCHEMA = z.strictObject({
  version: z.number().int().min(1).max(MAX_CONFIG_VERSION, `version must be at most ${MAX_CONFIG_VERSION} (docs/configuration.md, "Versions")`),
  publishedAt: z.union([z.iso.datetime({ offset: true }), z.number().int().min(0)]).optional(),
  keepalive: z
    .strictObject({
      minIntervalMs: ms,
      maxIntervalMs: ms,
      lbIdleWindowMs: ms,
      deadPeerDetectMs: ms,
      heartbeatBudgetPerSec: z.number().finite(),
      baseIdleMs: ms,
    })
    .partial()
    .optional(),
  drainGraceMs: ms.optional(),
  defaultMaxAttempts: count.optional(),
  defaultAttemptTimeoutMs: ms.optional(),
  backoff: backoff.optional(),
  zoneSpilloverDelayMs: ms.optional(),
  maxSlotsPerSession: count.optional(),
  maxSessionAgeMs: ms.optional(),
  taskLeaseMs: ms.optional(),
  call: z.strictObject({ callTimeoutMs: ms, maxAttempts: count, backoff }).partial().optional(),
  breaker: z.strictObject({ errorThresholdPercentage: z.number().finite(), volumeThreshold: count, resetTimeoutMs: ms, rollingWindowMs: ms }).partial().optional(),
  slo: z
    .strictObject({
      defaultP99Ms: ms,
      defaultP95Ms: ms,
      pairs: z.record(z.string(), z.strictObject({ p99Ms: ms, p95Ms: ms.optional() })),
    })
    .partial()
    .optional(),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).optional(),
});

export type RuntimeDocument = z.infer<typeof RUNTIME_DOCUMENT_SCHEMA>;

/** The startup values a runtime document layers over. */
export interface RuntimeBaseline {
  core: CoreOptions;
  call: CallPolicy;
  breaker: BreakerOptions;
  slo: SloThresholds;
  logLevel: LogLevel;
}

/** What is in force: the baseline with the document's keys applied, every range checked. */
export interface RuntimeSettings extends RuntimeBaseline {
  version: number;
  publishedAtMs: number | undefined;
}

export const DEFAULT_BASELINE: RuntimeBaseline = {
  core: compileCoreOptions(),
  call: compileCallPolicy(),
  breaker: DEFAULT_BREAKER_OPTIONS,
  slo: compileSloThresholds(),
  // The level the process started with (ZONAL_LOG_LEVEL), so a document without logLevel leaves it alone.
  logLevel: currentLogLevel(),
};

/** The settings before any runtime document arrived. */
export function baselineSettings(baseline: RuntimeBaseline): RuntimeSettings {
  return { ...baseline, version: 0, publishedAtMs: undefined };
}

export class RuntimeSchemaError extends Error {
  override readonly name = 'RuntimeSchemaError';
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(document)'}: ${issue.message}`)
    .join('; ');
}

/**
 * Checks a parsed document (any JSON value) against the schema and the
 * ranges, and returns the settings it puts in force over `baseline`.
 * Throws RuntimeSchemaError naming the offending key.
 */
export function compileRuntimeDocument(value: unknown, baseline: RuntimeBaseline): RuntimeSettings {
  const parsed = RUNTIME_DOCUMENT_SCHEMA.safeParse(value);
  if (!parsed.success) throw new RuntimeSchemaError(describeIssues(parsed.error));
  const doc = parsed.data;
  try {
    const coreInput: CoreOptionsInput = {
      ...baseline.core,
      keepalive: { ...baseline.core.keepalive, ...doc.keepalive },
      backoff: { ...baseline.core.backoff, ...doc.backoff },
      ...pick(doc, ['drainGraceMs', 'defaultMaxAttempts', 'defaultAttemptTimeoutMs', 'zoneSpilloverDelayMs', 'maxSlotsPerSession', 'maxSessionAgeMs', 'taskLeaseMs']),
    };
    return {
      version: doc.version,
      publishedAtMs: doc.publishedAt === undefined ? undefined : typeof doc.publishedAt === 'number' ? doc.publishedAt : Date.parse(doc.publishedAt),
      core: compileCoreOptions(coreInput),
      call: compileCallPolicy({ ...baseline.call, ...doc.call, backoff: { ...baseline.call.backoff, ...doc.call?.backoff } }),
      breaker: compileBreakerOptions({ ...baseline.breaker, ...doc.breaker }),
      slo: compileSloThresholds({ ...baseline.slo, ...doc.slo, pairs: { ...baseline.slo.pairs, ...doc.slo?.pairs } }),
      logLevel: doc.logLevel ?? baseline.logLevel,
    };
  } catch (err) {
    if (err instanceof RangeError) throw new RuntimeSchemaError(err.message);
    throw err;
  }
}

function pick<T extends object, K extends keyof T>(from: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (from[key] !== undefined) out[key] = from[key];
  return out;
}
