import { createLogger, LogLimiter, RateLimitedLog } from '../log';
import { ConfigGate, OFFER_RESULTS, type Decision, type OfferResult } from './config-gate';
import type { ConfigSource } from './config-source';
import { LastGoodSnapshot } from './last-good-snapshot';
import type { RuntimeBaseline, RuntimeSettings } from './runtime-schema';
import { PublicKeyRing } from './signature';

const log = createLogger('config');

/** The origin of the document read back from the last-good snapshot at start. */
const LAST_GOOD_ORIGIN = 'last-good snapshot';

export interface RuntimeConfigOptions {
  baseline: RuntimeBaseline;
  /** Where documents come from; none: the baseline stays in force. */
  source?: ConfigSource;
  /** Where the last-good snapshot lives; none: no snapshot. */
  dataDir?: string;
  publicKeys?: PublicKeyRing;
  /** Wall clock (ms since the epoch), for publish -> apply times. */
  nowMs?: () => number;
}

export type ChangeListener = (settings: RuntimeSettings, previous: RuntimeSettings) => void;
export type DecisionListener = (decision: Decision, origin: string, publishToApplyMs: number | undefined) => void;

export interface RuntimeConfigStatus {
  version: number;
  source: string;
  appliedFrom: string;
  appliedAt: string | undefined;
  signedBy: string[];
  counts: Record<OfferResult, number>;
  lastRefusal: { result: OfferResult; reason: string; version: number | undefined; at: string; from: string } | undefined;
  settings: RuntimeSettings;
}

/**
 * The runtime configuration of one process: a ConfigGate (versioned
 * compare-and-set), the source that feeds it, the last-good snapshot and
 * the listeners that put new settings into effect.
 *
 * `start()` never waits on the network: it applies the last-good snapshot
 * and whatever the source can read locally, then returns; a remote source
 * converges later. An applied document is written to the snapshot only
 * after it passed every check. Listeners run synchronously in the order
 * documents are applied, so they always see versions increasing.
 */
export class RuntimeConfig {
  private readonly gate: ConfigGate;
  private readonly snapshot: LastGoodSnapshot | undefined;
  private readonly listeners = new Set<ChangeListener>();
  private readonly decisionListeners = new Set<DecisionListener>();
  private readonly counts = Object.fromEntries(OFFER_RESULTS.map((r) => [r, 0])) as Record<OfferResult, number>;
  private readonly nowMs: () => number;
  private appliedFrom = 'defaults';
  private appliedAtMs: number | undefined;
  private lastRefusal: RuntimeConfigStatus['lastRefusal'];
  private started = false;
  private closed = false;
  /** At most 20 refusal lines per 10 s (a flood of bad documents must not flood the log); the counters see every one, and one line says how many were left out. */
  private readonly refusalLog: RateLimitedLog;

  constructor(private readonly options: RuntimeConfigOptions) {
    this.gate = new ConfigGate(options.baseline, options.publicKeys ?? new PublicKeyRing());
    this.nowMs = options.nowMs ?? Date.now;
    this.refusalLog = new RateLimitedLog(
      new LogLimiter(20, 10_000),
      (suppressed) => log.warn('runtime config refusals not logged in the last window (see zonal_config_updates_total)', { suppressed }),
      this.nowMs,
    );
    this.snapshot =
      options.dataDir === undefined
        ? undefined
        : new LastGoodSnapshot(options.dataDir, (err) => log.error('writing the last-good config snapshot failed; the config in force is unaffected', { error: err }));
  }

  get current(): RuntimeSettings {
    return this.gate.current;
  }

  /** Runs `listener` after every applied document; returns the function that removes it. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs `listener` after every decision (metrics). */
  onDecision(listener: DecisionListener): () => void {
    this.decisionListeners.add(listener);
    return () => this.decisionListeners.delete(listener);
  }

  /** Applies the last-good snapshot and the source's local state, then watches the source. Returns at once. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const saved = this.snapshot?.load();
    if (saved !== undefined) this.offer(saved, LAST_GOOD_ORIGIN);
    const source = this.options.source;
    if (source !== undefined) {
      source.start((text) => {
        if (!this.closed) this.offer(text, source.description);
      });
    }
  }

  /** Decides one delivered document (also the seam tests use to deliver directly). */
  offer(document: Uint8Array | string | null | undefined, origin: string): Decision {
    const decision = this.gate.offer(document);
    this.counts[decision.result] += 1;
    const now = this.nowMs();
    let publishToApplyMs: number | undefined;
    if (decision.result === 'applied') {
      this.appliedFrom = origin;
      this.appliedAtMs = now;
      const published = decision.settings.publishedAtMs;
      publishToApplyMs = published === undefined || origin === LAST_GOOD_ORIGIN ? undefined : Math.max(0, now - published);
      log.info('runtime config applied', { version: decision.version, previous: decision.previous.version, from: origin, publishToApplyMs });
      const text = this.gate.currentText;
      if (text !== undefined && origin !== LAST_GOOD_ORIGIN) void this.snapshot?.save(text);
      for (const listener of this.listeners) {
        try {
          listener(decision.settings, decision.previous);
        } catch (err) {
          log.error('a runtime config listener threw; the other listeners still ran', { version: decision.version, error: err });
        }
      }
    } else if (decision.result !== 'duplicate') {
      this.lastRefusal = { result: decision.result, reason: decision.reason, version: decision.version, at: new Date(now).toISOString(), from: origin };
      // A repeat of a refusal already logged (the same text read again) is not logged again.
      if (!decision.repeated) {
        const level = decision.result === 'empty' || decision.result === 'stale' ? 'info' : 'warn';
        this.refusalLog.write(() =>
          log[level](`runtime config update refused (${decision.result}); the config in force stays`, {
            reason: decision.reason,
            version: decision.version,
            inForce: decision.previous.version,
            from: origin,
          }),
        );
      }
    }
    for (const listener of this.decisionListeners) listener(decision, origin, publishToApplyMs);
    return decision;
  }

  /** How many documents ended in each result since start. */
  get resultCounts(): Readonly<Record<OfferResult, number>> {
    return this.counts;
  }

  status(): RuntimeConfigStatus {
    return {
      version: this.current.version,
      source: this.options.source?.description ?? 'none (startup options only)',
      appliedFrom: this.appliedFrom,
      appliedAt: this.appliedAtMs === undefined ? undefined : new Date(this.appliedAtMs).toISOString(),
      signedBy: this.options.publicKeys?.ids() ?? [],
      counts: { ...this.counts },
      lastRefusal: this.lastRefusal,
      settings: this.current,
    };
  }

  /** Stops the source and waits for the snapshot write in progress. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.options.source?.close();
    this.refusalLog.close();
    await this.snapshot?.flush();
    this.listeners.clear();
    this.decisionListeners.clear();
  }

  /** Resolves once the newest applied document is in the snapshot (tests). */
  flushSnapshot(): Promise<void> {
    return this.snapshot?.flush() ?? Promise.resolve();
  }
}
