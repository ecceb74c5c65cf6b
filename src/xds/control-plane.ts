import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../log';
import { registryService } from '../protocol/service';
import { AdsStream, type AdsStreamHost } from './ads-stream';
import type { ClientLocality } from './endpoints';
import { parseEndpointAddress } from './endpoints';
import { EndpointRegistry, type Registration } from './endpoint-registry';
import { ADS_METHOD_PATH, EDS_TYPE_URL, shortTypeName } from './resources';
import { buildSnapshot, DEFAULT_POLICY, type Snapshot, type XdsPolicy } from './snapshot';

const log = createLogger('xds');

export interface ControlPlaneOptions {
  policy?: Partial<XdsPolicy>;
  /** A registered dispatcher silent this long is served UNHEALTHY (default 1000 ms). */
  healthWindowMs?: number;
  /** ... and removed after this long (default 60 s). */
  removeAfterMs?: number;
}

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
  readonly healthWindowMs: number;
  readonly nacks: NackRecord[] = [];
  nackCount = 0;

  constructor(options: ControlPlaneOptions = {}) {
    this.healthWindowMs = options.healthWindowMs ?? 1_000;
    this.registry = new EndpointRegistry({ healthWindowMs: this.healthWindowMs, removeAfterMs: options.removeAfterMs ?? 60_000 });
    this.policy = { ...DEFAULT_POLICY, ...options.policy };
  }

  get epoch(): number {
    return this.epochCounter;
  }

  /** Adds the ADS and Registry services to `server`. */
  attach(server: grpc.Server): void {
    server.addService(ADS_SERVICE, { StreamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.streams.add(new AdsStream(call, this)) });
    server.addService(registryService().definition, {
      Heartbeat: (call: grpc.ServerUnaryCall<{ endpointId: string; address: string; zone: string; region: string; draining: boolean }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        try {
          const r = call.request;
          const { ip, port } = parseEndpointAddress(r.address);
          if (r.endpointId === '') throw new RangeError('endpoint_id is required');
          this.heartbeat({ id: r.endpointId, ip, port, zone: r.zone, region: r.region, draining: r.draining });
          cb(null, { healthyZones: this.registry.healthyZones(), healthWindowMs: this.healthWindowMs });
        } catch (err) {
          cb({ code: grpc.status.INVALID_ARGUMENT, details: `INVALID_ARGUMENT: ${err instanceof Error ? err.message : String(err)}` }, null);
        }
      },
      Deregister: (call: grpc.ServerUnaryCall<{ endpointId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (this.registry.deregister(call.request.endpointId)) this.changed('deregister');
        cb(null, {});
      },
      AwaitPropagated: (call: grpc.ServerUnaryCall<{ timeoutMs: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const timeoutMs = Math.min(30_000, Math.max(0, call.request.timeoutMs || 2_000));
        this.awaitPropagated(timeoutMs).then((r) => cb(null, { settled: r.settled, pendingClients: r.pending }), (err: unknown) => cb({ code: grpc.status.INTERNAL, details: String(err) }, null));
      },
    });
    this.scheduleSweep();
  }

  heartbeat(registration: Registration): void {
    if (this.registry.heartbeat(registration, Date.now())) this.changed(`heartbeat ${registration.id} ${registration.draining ? 'DRAINING' : 'HEALTHY'}`);
    this.scheduleSweep();
  }

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
      snapshot = buildSnapshot(this.registry.endpoints(), locality, this.policy);
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
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
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
    const next = this.registry.nextSweepAtMs();
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    if (next === undefined) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      if (this.registry.sweep(Date.now())) this.changed('health sweep');
      this.scheduleSweep();
    }, Math.max(5, next - Date.now()));
    this.sweepTimer.unref();
  }
}
