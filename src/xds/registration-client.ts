import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../log';
import { registryService } from '../protocol/service';
import { deadlineIn } from '../client/call-policy';
import { ZonalError } from '../errors';
import { fromServiceError } from '../protocol/grpc-errors';
import { Breaker, compileBreakerOptions, type BreakerOptions, type CircuitState } from '../resilience/breaker';
import { reportCircuitState, type Gauge } from '../telemetry/client-metrics';

const log = createLogger('registration');

export interface RegistrationOptions {
  /** The control plane, host:port. */
  controlPlane: string;
  endpointId: string;
  /** ip:port clients dial. */
  address: string;
  zone: string;
  region: string;
  /** Heartbeat period; a quarter of the control plane's health window by default. */
  intervalMs: number;
  /** Called with the zones that have a healthy dispatcher, after each heartbeat. */
  onHealthyZones(zones: string[]): void;
  /** The breaker that guards heartbeats; defaults follow `intervalMs` (see `registrationBreakerDefaults`). */
  breaker?: Partial<BreakerOptions>;
  /** METRICS.dependencyCircuitState, reported with `dependency="control-plane"`. */
  circuitStateGauge?: Gauge;
  /** The control plane's registration token, read at each call (so a rotated token file is followed); none when absent. */
  token?: () => string;
}

/**
 * Breaker defaults for heartbeats every `intervalMs`: it may open after a
 * health window (4 beats) of failures, and probes again after one health
 * window, so a control plane that comes back sees this dispatcher again
 * within about one health window.
 */
export function registrationBreakerDefaults(intervalMs: number): BreakerOptions {
  return {
    errorThresholdPercentage: 50,
    volumeThreshold: 4,
    rollingWindowMs: Math.max(1_000, 20 * intervalMs),
    rollingWindowBuckets: 10,
    resetTimeoutMs: Math.max(100, 4 * intervalMs),
  };
}

type Unary = (req: unknown, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void;
type UnaryWithMetadata = (req: unknown, metadata: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void;

/**
 * Keeps one dispatcher registered with the control plane: a heartbeat every
 * `intervalMs`, DRAINING on shutdown, deregistration at the end. A missed
 * heartbeat is retried on the next tick; the control plane marks the
 * dispatcher UNHEALTHY only after a whole health window of silence.
 *
 * The control plane is the dispatcher's external dependency, so heartbeats go
 * through a circuit breaker: while it is OPEN and the connection to the
 * control plane is down, heartbeats are skipped (no call, no log line). When
 * the connection is READY again after being down (a restarted control
 * plane), a heartbeat goes out at once, not at the next tick; while the
 * breaker is open it is a probe made outside it: if it succeeds the breaker closes, so a
 * restarted control plane sees every live dispatcher again within about one
 * heartbeat interval (it holds endpoint answers back for a health window, see
 * ControlPlane). A control plane that stays connected but answers errors
 * gets only the breaker's own probes. The shutdown calls (DRAINING, AwaitPropagated,
 * Deregister) bypass it: each is one bounded best-effort attempt, and skipping
 * DRAINING would leave clients sending here until GoAway.
 */
export class RegistrationClient {
  private readonly client: grpc.Client;
  private timer: NodeJS.Timeout | undefined;
  private draining = false;
  private inFlight = false;
  private failures = 0;
  /** The connection left READY since the last heartbeat that got through: its next READY earns a heartbeat at once. */
  private reconnecting = false;
  private readonly breaker: Breaker;
  private readonly stopReporting: () => void;

  /** New breaker thresholds (a runtime config update); the circuit's state is kept. */
  setBreakerOptions(next: BreakerOptions): void {
    this.breaker.setOptions(next);
  }

  get breakerOptions(): BreakerOptions {
    return this.breaker.options;
  }

  constructor(private readonly options: RegistrationOptions) {
    this.breaker = new Breaker(`control plane ${options.controlPlane}`, compileBreakerOptions(options.breaker, registrationBreakerDefaults(options.intervalMs)));
    this.breaker.onStateChange((state, previous) => {
      // Once per outage: the HALF_OPEN -> OPEN cycles of failed probes are not logged.
      if (state === 'OPEN' && previous === 'CLOSED') {
        log.warn('control plane unreachable: heartbeats paused until the circuit probes again', { controlPlane: options.controlPlane, probeAtMs: this.breaker.probeAtMs() });
      } else {
        log.debug('control plane circuit', { controlPlane: options.controlPlane, from: previous, to: state });
      }
    });
    this.stopReporting = reportCircuitState(this.breaker, options.circuitStateGauge, { dependency: 'control-plane' });
    // Reconnect within about a heartbeat interval after a control-plane restart: the default backoff grows to 2 minutes.
    const reconnectMs = Math.max(100, options.intervalMs);
    this.client = new (registryService().client)(options.controlPlane, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': Math.min(100, reconnectMs),
      'grpc.max_reconnect_backoff_ms': reconnectMs,
    });
  }

  start(): void {
    this.timer = setInterval(() => this.beat(), this.options.intervalMs);
    this.followConnection();
    this.beat();
  }

  /**
   * Watches the connection to the control plane: when it is READY again
   * after being down (a restarted control plane), heartbeats at once instead
   * of at the next tick, so the control plane sees this dispatcher within
   * its warm-up. No timer: a watch with no deadline holds no handle.
   */
  private followConnection(): void {
    const channel = this.client.getChannel();
    const state = channel.getConnectivityState(false);
    if (state === grpc.connectivityState.SHUTDOWN || this.timer === undefined) return;
    channel.watchConnectivityState(state, Infinity, () => {
      if (this.timer === undefined) return;
      const next = channel.getConnectivityState(false);
      if (next === grpc.connectivityState.READY) {
        if (this.reconnecting) this.beat();
      } else if (state === grpc.connectivityState.READY && next !== grpc.connectivityState.SHUTDOWN) {
        // It was up and went down (not the first connect).
        this.reconnecting = true;
      }
      this.followConnection();
    });
  }

  /**
   * Announces DRAINING and waits until every xDS client acknowledged it (or
   * `timeoutMs` passed), so clients stop sending here before GoAway.
   */
  async drain(timeoutMs: number): Promise<{ settled: boolean; pending: number }> {
    this.draining = true;
    await this.call('Heartbeat', this.request(), 1_000).catch((err: unknown) => log.warn('DRAINING heartbeat failed', { error: err }));
    try {
      const r = (await this.call('AwaitPropagated', { timeoutMs }, timeoutMs + 1_000)) as { settled: boolean; pendingClients: number };
      return { settled: r.settled, pending: r.pendingClients };
    } catch (err) {
      log.warn('could not wait for xDS clients to see DRAINING', { error: err });
      return { settled: false, pending: -1 };
    }
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.stopReporting();
    this.breaker.close();
    await this.call('Deregister', { endpointId: this.options.endpointId }, 1_000).catch(() => undefined);
    this.client.close();
  }

  /** State of the breaker that guards heartbeats. */
  circuitState(): CircuitState {
    return this.breaker.state();
  }

  private request(): Record<string, unknown> {
    const o = this.options;
    return { endpointId: o.endpointId, address: o.address, zone: o.zone, region: o.region, draining: this.draining };
  }

  private beat(): void {
    if (this.inFlight) return;
    const heartbeat = (): Promise<unknown> => this.call('Heartbeat', this.request(), Math.max(200, this.options.intervalMs * 2));
    let attempt: Promise<unknown>;
    if (this.breaker.state() === 'OPEN') {
      // Keep the connection trying (true: leave IDLE). While it is down, skip
      // without a call; the breaker turns HALF_OPEN after its reset timeout.
      // Once it is READY again the control plane may be back: probe now, once.
      if (this.client.getChannel().getConnectivityState(true) !== grpc.connectivityState.READY || !this.reconnecting) return;
      this.reconnecting = false;
      attempt = heartbeat().then((response) => {
        this.breaker.recovered();
        return response;
      });
    } else {
      attempt = this.breaker.fire(heartbeat);
    }
    this.inFlight = true;
    attempt.then(
      (response) => {
        this.inFlight = false;
        this.reconnecting = false;
        if (this.failures > 0) log.info('control plane reachable again', { failures: this.failures });
        this.failures = 0;
        this.options.onHealthyZones((response as { healthyZones: string[] }).healthyZones);
      },
      (err: unknown) => {
        this.inFlight = false;
        // Failed fast (the breaker is open), or stopped meanwhile: no heartbeat failed.
        if ((err instanceof ZonalError && err.reason === 'CIRCUIT_OPEN') || this.timer === undefined) return;
        this.failures += 1;
        // Log the first failure and then every 40th, so an outage does not flood the log.
        if (this.failures === 1 || this.failures % 40 === 0) log.warn('heartbeat to the control plane failed', { failures: this.failures, error: err });
      },
    );
  }

  private call(method: string, request: unknown, timeoutMs: number): Promise<unknown> {
    const fn = (this.client as unknown as Record<string, Unary>)[method]!.bind(this.client);
    const token = this.options.token?.();
    const metadata = new grpc.Metadata();
    if (token !== undefined && token !== '') metadata.set('authorization', `Bearer ${token}`);
    return new Promise((resolve, reject) => (fn as unknown as UnaryWithMetadata)(request, metadata, { deadline: deadlineIn(timeoutMs) }, (e, r) => (e ? reject(fromServiceError(e)) : resolve(r))));
  }
}
