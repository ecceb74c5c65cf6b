import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { ZonalError } from '../errors';
import { createLogger } from '../log';
import { indicatesUnhealthy } from '../protocol/grpc-errors';

const log = createLogger('breaker');

/**
 * - CLOSED: calls go through; failures are counted over the rolling window.
 * - OPEN: calls fail fast with CIRCUIT_OPEN and never reach the dependency, until `resetTimeoutMs` passed.
 * - HALF_OPEN: the next call goes through as a probe (the others fail fast); its success closes the breaker, its failure opens it again.
 */
export type CircuitState = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

export interface BreakerOptions {
  /** The breaker opens when more than this percentage of the calls in the rolling window failed (100 never opens). */
  errorThresholdPercentage: number;
  /** Fewest calls in the rolling window before the breaker may open, so one early failure does not. */
  volumeThreshold: number;
  /** How far back failures are counted. */
  rollingWindowMs: number;
  /** Slices of the rolling window; the oldest slice is dropped every rollingWindowMs / rollingWindowBuckets. */
  rollingWindowBuckets: number;
  /** Time the breaker stays OPEN before letting one probe through. */
  resetTimeoutMs: number;
}

export const DEFAULT_BREAKER_OPTIONS: BreakerOptions = {
  errorThresholdPercentage: 50,
  volumeThreshold: 10,
  rollingWindowMs: 10_000,
  rollingWindowBuckets: 10,
  resetTimeoutMs: 5_000,
};

function check(name: string, value: number, min: number, max: number, integer = false): void {
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new RangeError(`breaker.${name} must be ${integer ? 'a whole number ' : ''}between ${min} and ${max}, got ${value}`);
  }
}

/** Defaults, then range checks; the result is used as is from then on. */
export function compileBreakerOptions(input: Partial<BreakerOptions> = {}, defaults: BreakerOptions = DEFAULT_BREAKER_OPTIONS): BreakerOptions {
  const o: BreakerOptions = { ...defaults, ...input };
  check('errorThresholdPercentage', o.errorThresholdPercentage, 0, 100);
  check('volumeThreshold', o.volumeThreshold, 0, 1_000_000, true);
  check('rollingWindowMs', o.rollingWindowMs, 10, 3_600_000);
  check('rollingWindowBuckets', o.rollingWindowBuckets, 1, 1_000, true);
  check('rollingWindowMs / rollingWindowBuckets', o.rollingWindowMs / o.rollingWindowBuckets, 1, 3_600_000);
  check('resetTimeoutMs', o.resetTimeoutMs, 1, 3_600_000);
  return o;
}

export type StateChangeListener = (state: CircuitState, previous: CircuitState) => void;

export interface BreakerSeams {
  /** Whether a failure counts against the dependency's health; others pass through as if the call succeeded. Default: `indicatesUnhealthy`. */
  countsAsFailure?: (error: unknown) => boolean;
}

type Action = (call: () => Promise<unknown>) => Promise<unknown>;

/**
 * A circuit breaker around one dependency (`target`), built on opossum.
 * opossum's own timeout is off: the gRPC deadline of each call governs.
 * Only failures that `countsAsFailure` accepts count; an answer such as
 * INVALID_ARGUMENT means the dependency is healthy.
 *
 * Invariant: `current` mirrors opossum's state and changes only in
 * `transitionTo`. When the breaker closes, the rolling window is emptied, so
 * the failures that opened it cannot open it again at the next single failure.
 */
export class Breaker {
  private readonly circuit: CircuitBreaker<[() => Promise<unknown>], unknown>;
  private readonly rotation = new EventEmitter();
  private readonly listeners = new Set<StateChangeListener>();
  private current: CircuitState = 'CLOSED';
  private openedAtMs = 0;
  /** The reset timeout opossum's timer was started with when the breaker last opened. */
  private openedResetTimeoutMs = 0;
  private openedWith = { failures: 0, calls: 0 };
  private shutDown = false;
  private rotationTimer: NodeJS.Timeout;

  constructor(
    readonly target: string,
    private currentOptions: BreakerOptions,
    seams: BreakerSeams = {},
  ) {
    const options = currentOptions;
    const countsAsFailure = seams.countsAsFailure ?? indicatesUnhealthy;
    const action: Action = (call) => call();
    this.circuit = new CircuitBreaker(action, {
      name: target,
      timeout: false,
      resetTimeout: options.resetTimeoutMs,
      errorThresholdPercentage: options.errorThresholdPercentage,
      volumeThreshold: options.volumeThreshold,
      rollingCountTimeout: options.rollingWindowMs,
      rollingCountBuckets: options.rollingWindowBuckets,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      // We turn the window ourselves, so closing can empty it (see flushWindow).
      rotateBucketController: this.rotation,
      errorFilter: (error: unknown) => !countsAsFailure(error),
    });
    this.rotationTimer = this.startRotation();
    this.circuit.on('open', () => this.transitionTo('OPEN'));
    this.circuit.on('halfOpen', () => this.transitionTo('HALF_OPEN'));
    this.circuit.on('close', () => this.transitionTo('CLOSED'));
  }

  get options(): BreakerOptions {
    return this.currentOptions;
  }

  /**
   * New thresholds while running (a runtime config update); the state and
   * the counts of the rolling window are kept. The number of buckets is
   * fixed when the breaker is made, so `rollingWindowBuckets` is ignored
   * here; a new `rollingWindowMs` changes how often the window turns.
   */
  setOptions(next: BreakerOptions): void {
    if (this.shutDown) return;
    const previous = this.currentOptions;
    this.currentOptions = { ...next, rollingWindowBuckets: previous.rollingWindowBuckets };
    const opossum = this.circuit as unknown as { options: { errorThresholdPercentage: number; resetTimeout: number } };
    opossum.options.errorThresholdPercentage = next.errorThresholdPercentage;
    opossum.options.resetTimeout = next.resetTimeoutMs;
    // opossum 9 keeps volumeThreshold under a private symbol with a getter
    // only; test/unit/breaker-set-options.test.ts fails if a new opossum moves it.
    const symbol = Object.getOwnPropertySymbols(this.circuit).find((s) => s.description === 'volume-threshold');
    if (symbol !== undefined) (this.circuit as unknown as Record<symbol, number>)[symbol] = next.volumeThreshold;
    if (next.rollingWindowMs !== previous.rollingWindowMs) {
      clearInterval(this.rotationTimer);
      this.rotationTimer = this.startRotation();
    }
  }

  private startRotation(): NodeJS.Timeout {
    const timer = setInterval(() => this.rotation.emit('rotate'), Math.floor(this.currentOptions.rollingWindowMs / this.currentOptions.rollingWindowBuckets));
    timer.unref();
    return timer;
  }

  /** Runs `call` unless the breaker is open; then it rejects at once with ZonalError CIRCUIT_OPEN. */
  fire<T>(call: () => Promise<T>): Promise<T> {
    return (this.circuit.fire(call) as Promise<T>).catch((error: unknown) => {
      throw error instanceof Error && CircuitBreaker.isOurError(error) ? this.failFastError(error) : error;
    });
  }

  state(): CircuitState {
    return this.current;
  }

  /** When the next probe may go through (ms since the epoch) while OPEN; undefined in the other states. */
  probeAtMs(): number | undefined {
    return this.current === 'OPEN' ? this.openedAtMs + this.openedResetTimeoutMs : undefined;
  }

  /**
   * A probe the caller made outside the breaker succeeded (for example the
   * first call after its connection came back): the dependency is healthy,
   * so close now rather than at the next scheduled probe. No effect unless
   * OPEN or HALF_OPEN.
   */
  recovered(): void {
    if (this.shutDown || this.current === 'CLOSED') return;
    this.circuit.close();
  }

  /** Calls `listener` after every state change; returns the function that removes it. */
  onStateChange(listener: StateChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops the breaker's timers; later calls reject with SHUTTING_DOWN. Idempotent. */
  close(): void {
    if (this.shutDown) return;
    this.shutDown = true;
    clearInterval(this.rotationTimer);
    this.listeners.clear();
    this.circuit.shutdown();
  }

  private transitionTo(next: CircuitState): void {
    const previous = this.current;
    if (previous === next) return;
    this.current = next;
    if (next === 'OPEN') {
      this.openedAtMs = Date.now();
      this.openedResetTimeoutMs = this.currentOptions.resetTimeoutMs;
      const stats = this.circuit.stats;
      this.openedWith = { failures: stats.failures, calls: stats.fires };
    }
    if (next === 'CLOSED') this.flushWindow();
    log.debug('circuit state change', { target: this.target, from: previous, to: next });
    for (const listener of this.listeners) {
      try {
        listener(next, previous);
      } catch (err) {
        log.warn('a circuit state listener threw', { target: this.target, error: err });
      }
    }
  }

  /** Replaces every bucket of the rolling window with an empty one. */
  private flushWindow(): void {
    for (let i = 0; i < this.options.rollingWindowBuckets; i++) this.rotation.emit('rotate');
  }

  private failFastError(error: Error): ZonalError {
    const code = (error as Error & { code?: string }).code;
    if (code === 'ESHUTDOWN' || this.shutDown) return new ZonalError('SHUTTING_DOWN', `the circuit breaker to ${this.target} was shut down`, { cause: error });
    if (this.current === 'HALF_OPEN') {
      return new ZonalError('CIRCUIT_OPEN', `circuit to ${this.target} is half-open and its probe call is in flight; calls fail fast until it answers`, { cause: error });
    }
    const probeAt = this.openedAtMs + this.openedResetTimeoutMs;
    const inMs = Math.max(0, probeAt - Date.now());
    return new ZonalError(
      'CIRCUIT_OPEN',
      `circuit to ${this.target} is open (${this.openedWith.failures} of ${this.openedWith.calls} calls failed in the last ${this.options.rollingWindowMs} ms); calls fail fast until a probe at ${new Date(probeAt).toISOString()} (in ${inMs} ms)`,
      { cause: error },
    );
  }
}
