import * as grpc from '@grpc/grpc-js';
import { createLogger, LogLimiter } from '../log';
import { registryService } from '../protocol/service';
import { AdsStream, type AdsStreamHost } from './ads-stream';
import type { ClientLocality } from './endpoints';
import { parseEndpointAddress } from './endpoints';
import { EndpointRegistry, type Registration } from './endpoint-registry';
import { warmUpEnvoyCodec } from './codec-warm-up';
import { checkRegistrationFields } from './registration-limits';
import { RegistrationRefusedError } from './registration-refused-error';
import { ADS_METHOD_PATH, EDS_TYPE_URL, shortTypeName } from './resources';
import { buildSnapshot, DEFAULT_POLICY, type Snapshot, type XdsPolicy } from './snapshot';
import { StallDetector } from './stall-detector';

const log = createLogger('xds');

export interface ControlPlaneOptions {
  policy?: Partial<XdsPolicy>;
  /** A registered dispatcher silent this long is served UNHEALTHY (default 1000 ms). */
  healthWindowMs?: number;
  /** ... and removed after this long (default 60 s). */
  removeAfterMs?: number;
  /**
   * After start, endpoint (EDS) answers are held back this long, so the
   * registry fills before clients see it: a restarted control plane would
   * otherwise serve an empty or partial list (default: the health window,
   * in which every live dispatcher heartbeats about 4 times).
   */
  warmUpMs?: number;
  /**
   * The registration port's shared token (src/security/token-file.ts): when
   * set, Heartbeat, Deregister and AwaitPropagated need "authorization:
   * Bearer <token>", so no one who merely reaches the port can register an
   * endpoint. ADS stays open (grpc-js-xds clients cannot present one).
   */
  registrationAuth?: { matchesHeader(header: string | undefined): boolean };
}

/** A gap between two observations of the event loop longer than a tick plus this is a stall. */
const STALL_TOLERANCE_MS = 50;
/** ADS streams open at once; past this a new client is refused RESOURCE_EXHAUSTED (it retries with backoff). */
export const MAX_ADS_STREAMS = 10_000;
/** Snapshots kept (one per client zone); a client sending ever new zones must not grow memory. */
const MAX_SNAPSHOTS = 256;

const ADS_SERVICE: grpc.ServiceDefinition = {
  StreamAggregatedResources: {
    path: ADS_METHOD_PATH,
    requestStream: true,
    responseStream: true,
    // Decoded by AdsStream, so one client's bad bytes end only its stream.
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

export interface NackRecord {
  node: string;
  zone: string;
  type: string;
  version: string;
  error: string;
  atMs: number;
}

/**
 * The xDS control plane: an ADS server (state of the world, v3) whose
 * snapshots are built per client zone from a registry of dispatchers, plus
 * the Registry service dispatchers heartbeat to.
 *
 * Invariant: `snapshots` holds only snapshots built from the current
 * endpoint list and policy; any change clears it and bumps `epoch`.
 */
export class ControlPlane implements AdsStreamHost {
  readonly registry: EndpointRegistry;
  private policy: XdsPolicy;
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly streams = new Set<AdsStream>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly settleWaiters = new Set<() => void>();
  private epochCounter = 1;
  private readonly warmUpMs: number;
  /** Set once the warm-up is over: EDS is served. */
  private warm = false;
  private warmUpTimer: NodeJS.Timeout | undefined;
  private readonly stalls: StallDetector;
  private stallTimer: NodeJS.Timeout | undefined;
  private closedPlane = false;
  private readonly clientWarnings = new LogLimiter(20, 10_000);
  readonly healthWindowMs: number;
  readonly nacks: NackRecord[] = [];
  nackCount = 0;
  /** Registry calls refused for want of the registration token. */
  refusedRegistrations = 0;
  private readonly registrationAuth: ControlPlaneOptions['registrationAuth'];
  /** Responses pushed to clients and ACKs received, for metrics. */
  readonly counts = { pushes: 0, acks: 0 };

  constructor(options: ControlPlaneOptions = {}) {
    this.healthWindowMs = options.healthWindowMs ?? 1_000;
    this.registrationAuth = options.registrationAuth;
    this.registry = new EndpointRegistry({ healthWindowMs: this.healthWindowMs, removeAfterMs: options.removeAfterMs ?? 60_000 });
    this.policy = { ...DEFAULT_POLICY, ...options.policy };
    this.warmUpMs = options.warmUpMs ?? this.healthWindowMs;
    this.stalls = new StallDetector(Math.max(10, Math.min(100, Math.floor(this.healthWindowMs / 10))), STALL_TOLERANCE_MS);
  }

  /** False during the warm-up after start, while endpoint answers are held back. */
  get serving(): boolean {
    return this.warm;
  }

  get epoch(): number {
    return this.epochCounter;
  }

  /**
   * Adds the ADS and Registry services to `server`, and starts the clock of
   * the warm-up. Loads the envoy codec now (300 ms, more under load): lazily,
   * the first client request would block heartbeats that long.
   */
  attach(server: grpc.Server): void {
    warmUpEnvoyCodec();
    server.addService(ADS_SERVICE, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        if (this.streams.size >= MAX_ADS_STREAMS) {
          call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `this control plane serves at most ${MAX_ADS_STREAMS} xDS clients` });
          return;
        }
        this.streams.add(new AdsStream(call, this));
      },
    });
    const auth = this.registrationAuth;
    /** UNAUTHENTICATED when the control plane asks for a token and the call lacks it; the handler runs otherwise. */
    const guarded = <Req>(handler: (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => void) => (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const header = call.metadata.get('authorization');
      if (auth !== undefined && !(header.length === 1 && typeof header[0] === 'string' && auth.matchesHeader(header[0]))) {
        this.refusedRegistrations += 1;
        const refused = new RegistrationRefusedError('UNAUTHENTICATED', 'this control plane asks for its registration token: start the dispatcher with --xds-registration-token-file naming the same token file');
        cb({ code: refused.grpcCode, details: `${refused.reason}: ${refused.message}` }, null);
        return;
      }
      handler(call, cb);
    };
    server.addService(registryService().definition, {
      Heartbeat: guarded((call: grpc.ServerUnaryCall<{ endpointId: string; address: string; zone: string; region: string; draining: boolean }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        try {
          const r = call.request;
          checkRegistrationFields({ id: r.endpointId, address: r.address, zone: r.zone, region: r.region });
          let parsed: { ip: string; port: number };
          try {
            parsed = parseEndpointAddress(r.address);
          } catch (err) {
            throw new RegistrationRefusedError('INVALID', err instanceof Error ? err.message : String(err));
          }
          this.heartbeat({ id: r.endpointId, ip: parsed.ip, port: parsed.port, zone: r.zone, region: r.region, draining: r.draining });
          cb(null, { healthyZones: this.registry.healthyZones(), healthWindowMs: this.healthWindowMs });
        } catch (err) {
          const refused = err instanceof RegistrationRefusedError ? err : new RegistrationRefusedError('INVALID', err instanceof Error ? err.message : String(err));
          cb({ code: refused.grpcCode, details: `${refused.reason}: ${refused.message}` }, null);
        }
      }),
      Deregister: guarded((call: grpc.ServerUnaryCall<{ endpointId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (this.registry.deregister(call.request.endpointId)) this.changed('deregister');
        cb(null, {});
      }),
      AwaitPropagated: guarded((call: grpc.ServerUnaryCall<{ timeoutMs: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const timeoutMs = Math.min(30_000, Math.max(0, call.request.timeoutMs || 2_000));
        this.awaitPropagated(timeoutMs).then((r) => cb(null, { settled: r.settled, pendingClients: r.pending }), (err: unknown) => cb({ code: grpc.status.INTERNAL, details: String(err) }, null));
      }),
    });
    if (this.warmUpMs <= 0) this.warm = true;
    else {
      this.warmUpTimer = setTimeout(() => {
        this.warmUpTimer = undefined;
        this.warm = true;
        this.changed('warm-up over: serving endpoints');
      }, this.warmUpMs);
      this.warmUpTimer.unref();
    }
    this.scheduleSweep();
  }

  /** Registers or refreshes a dispatcher; throws RegistrationRefusedError when refused. */
  heartbeat(registration: Registration): void {
    this.observeRunning(Date.now());
    if (this.registry.heartbeat(registration, Date.now())) this.changed(`heartbeat ${registration.id} ${registration.draining ? 'DRAINING' : 'HEALTHY'}`);
    this.scheduleSweep();
  }

  warnClient(message: string, fields: Record<string, unknown>): void {
    const { log: ok, suppressedBefore } = this.clientWarnings.take(Date.now());
    if (suppressedBefore > 0) log.warn('warnings about xDS client requests not logged in the last window', { suppressed: suppressedBefore });
    if (ok) log.warn(message, fields);
  }

  /** Throws RegistrationRefusedError when the list is refused (the last good one stays). */
  setStatic(registrations: readonly Registration[]): void {
    if (this.registry.setStatic(registrations)) this.changed('static endpoints');
  }

  setPolicy(policy: Partial<XdsPolicy>): void {
    const next = { ...DEFAULT_POLICY, ...policy };
    if (JSON.stringify(next) === JSON.stringify(this.policy)) return;
    this.policy = next;
    this.changed('policy');
  }

  snapshotFor(locality: ClientLocality): Snapshot {
    const key = `${locality.region}/${locality.zone}`;
    let snapshot = this.snapshots.get(key);
    if (snapshot === undefined) {
      const built = buildSnapshot(this.registry.endpoints(), locality, this.policy);
      // During the warm-up the endpoints are held back: clients keep what they have, new ones wait.
      snapshot = this.warm ? built : new Map([...built].filter(([typeUrl]) => typeUrl !== EDS_TYPE_URL));
      if (this.snapshots.size >= MAX_SNAPSHOTS) this.snapshots.clear();
      this.snapshots.set(key, snapshot);
    }
    return snapshot;
  }

  onNack(stream: AdsStream, typeUrl: string, version: string, error: string): void {
    this.nackCount += 1;
    const record = { node: stream.nodeId, zone: stream.locality.zone, type: shortTypeName(typeUrl), version, error, atMs: Date.now() };
    this.nacks.push(record);
    if (this.nacks.length > 100) this.nacks.shift();
    log.warn('xDS client NACKed a resource; it keeps its last good config and this version is not pushed to it again', { ...record });
  }

  onSettledChange(): void {
    for (const wake of [...this.settleWaiters]) wake();
  }

  closed(stream: AdsStream): void {
    this.streams.delete(stream);
    this.onSettledChange();
  }

  /** Resolves when every client has acknowledged (or rejected) the current endpoints, or after `timeoutMs`. */
  awaitPropagated(timeoutMs: number): Promise<{ settled: boolean; pending: number }> {
    const epoch = this.epochCounter;
    const pending = (): number => [...this.streams].filter((s) => !s.state.settled(EDS_TYPE_URL, epoch)).length;
    return new Promise((resolve) => {
      const check = (): void => {
        const left = pending();
        if (left > 0) return;
        this.settleWaiters.delete(check);
        clearTimeout(timer);
        resolve({ settled: true, pending: 0 });
      };
      const timer = setTimeout(() => {
        this.settleWaiters.delete(check);
        resolve({ settled: false, pending: pending() });
      }, timeoutMs);
      this.settleWaiters.add(check);
      check();
    });
  }

  /** What operators see at /xds/status. */
  status(): Record<string, unknown> {
    return {
      epoch: this.epochCounter,
      policy: this.policy,
      endpoints: this.registry.endpoints(),
      healthyZones: this.registry.healthyZones(),
      nackCount: this.nackCount,
      registrationTokenRequired: this.registrationAuth !== undefined,
      refusedRegistrations: this.refusedRegistrations,
      recentNacks: this.nacks.slice(-20),
      clients: [...this.streams].map((s) => ({
        node: s.nodeId,
        zone: s.locality.zone,
        region: s.locality.region,
        types: Object.fromEntries(
          [...s.state.types].map(([typeUrl, t]) => [shortTypeName(typeUrl), { sent: t.sentVersion, acked: t.ackedVersion, nacked: t.nackedVersion, acks: t.acks, nacks: t.nacks, lastNack: t.lastNack }]),
        ),
      })),
    };
  }

  close(): void {
    this.closedPlane = true;
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.stopStallWatch();
    if (this.warmUpTimer !== undefined) clearTimeout(this.warmUpTimer);
    this.warmUpTimer = undefined;
    for (const wake of [...this.settleWaiters]) wake();
  }

  private changed(why: string): void {
    this.epochCounter += 1;
    this.snapshots.clear();
    log.info('endpoints or policy changed; pushing', { why, epoch: this.epochCounter, endpoints: this.registry.endpoints().map((e) => `${e.zone}:${e.ip}:${e.port}:${e.health}`) });
    for (const stream of this.streams) stream.pushAll();
    this.onSettledChange();
  }

  private scheduleSweep(): void {
    // A heartbeat that arrives after close() (the gRPC server stops after the plane) starts no timer again.
    if (this.closedPlane) return;
    const next = this.registry.nextSweepAtMs();
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    if (next === undefined) {
      // Nothing is judged on heartbeats (no registrations, or static endpoints only): stalls do not matter, and an idle process is not woken 10 times a second.
      this.stopStallWatch();
      return;
    }
    this.startStallWatch();
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      // A stall that just ended is noted first: heartbeats queued during it are not silence.
      if (this.observeRunning(Date.now())) {
        this.scheduleSweep();
        return;
      }
      if (this.registry.sweep(Date.now())) this.changed('health sweep');
      this.scheduleSweep();
    }, Math.max(5, next - Date.now()));
    this.sweepTimer.unref();
  }

  /** Ticks so a stall of this process is seen (and taken off silence) by whatever runs first after it. */
  private startStallWatch(): void {
    if (this.stallTimer !== undefined) return;
    this.observeRunning(Date.now());
    this.stallTimer = setInterval(() => this.observeRunning(Date.now()), this.stalls.tickMs);
    this.stallTimer.unref();
  }

  private stopStallWatch(): void {
    if (this.stallTimer === undefined) return;
    clearInterval(this.stallTimer);
    this.stallTimer = undefined;
    this.stalls.forget();
  }

  /** Returns true when a stall just ended (and was noted in the registry). */
  private observeRunning(nowMs: number): boolean {
    const stall = this.stalls.observe(nowMs);
    if (stall === undefined) return false;
    this.registry.noteStall(stall.fromMs, stall.toMs);
    log.warn('the control plane did not run for a while; that time does not count as dispatcher silence', { stalledMs: stall.toMs - stall.fromMs });
    return true;
  }
}
