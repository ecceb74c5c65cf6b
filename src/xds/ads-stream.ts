import type * as grpc from '@grpc/grpc-js';
import { Status } from '../errors';
import { createLogger } from '../log';
import { AdsStreamState, type Push } from './ads-stream-state';
import { decodeDiscoveryRequest, encodeDiscoveryResponse, type DiscoveryRequest } from './envoy-protos';
import type { ClientLocality } from './endpoints';
import { shortTypeName, TYPE_URLS } from './resources';
import type { Snapshot } from './snapshot';

const log = createLogger('xds');

export interface AdsStreamHost {
  snapshotFor(locality: ClientLocality): Snapshot;
  readonly epoch: number;
  /** Logs a warning about a client's request, rate-limited across all clients: one client must not flood the log. */
  warnClient(message: string, fields: Record<string, unknown>): void;
  onNack(stream: AdsStream, typeUrl: string, version: string, error: string): void;
  /** Counts pushes and ACKs (for metrics). */
  readonly counts: { pushes: number; acks: number };
  onSettledChange(): void;
  closed(stream: AdsStream): void;
}

/** Longest node id, zone or region kept from a client (longer ones are cut: they are only shown and used as keys). */
export const MAX_CLIENT_NAME_CHARS = 128;
/** Most resource names one request may subscribe to; Zonal serves one per type. */
export const MAX_RESOURCE_NAMES = 100;

const clip = (s: string | undefined): string => (s ?? '').slice(0, MAX_CLIENT_NAME_CHARS);

/**
 * One client's ADS stream: decodes requests, keeps the ACK/NACK state, and
 * pushes the resources of the client's zone when they change. The node (and
 * so the zone) arrives only in the first request of a stream.
 *
 * Invariant: the state of a stream is bounded whatever the client sends:
 * only served types get state, names and NACK texts are bounded.
 */
export class AdsStream {
  readonly state = new AdsStreamState();
  nodeId = '';
  locality: ClientLocality = { zone: '', region: '' };
  private started = false;
  private ended = false;

  constructor(
    private readonly call: grpc.ServerDuplexStream<Buffer, Buffer>,
    private readonly host: AdsStreamHost,
  ) {
    call.on('data', (bytes: Buffer) => {
      try {
        this.onData(bytes);
      } catch (err) {
        // One client's request must never take the control plane down.
        log.error('failed to handle a DiscoveryRequest; ending that stream', { node: this.nodeId, error: err });
        this.fail('failed to handle the request');
      }
    });
    const gone = (): void => this.end();
    call.on('end', gone);
    call.on('error', gone);
    call.on('cancelled', gone);
  }

  /** Sends whatever changed for every subscribed type. */
  pushAll(): void {
    for (const typeUrl of TYPE_URLS) this.push(typeUrl);
  }

  private onData(bytes: Buffer): void {
    if (this.ended) return;
    let request: DiscoveryRequest;
    try {
      request = decodeDiscoveryRequest(bytes);
    } catch (err) {
      this.host.warnClient('undecodable DiscoveryRequest; ending the stream', { node: this.nodeId, error: err });
      this.fail('undecodable DiscoveryRequest');
      return;
    }
    if (!this.started) {
      this.started = true;
      this.nodeId = clip(request.node?.id);
      this.locality = { zone: clip(request.node?.locality?.zone), region: clip(request.node?.locality?.region) };
      log.info('xDS client connected', { node: this.nodeId, zone: this.locality.zone, region: this.locality.region });
    }
    if (!TYPE_URLS.includes(request.type_url as (typeof TYPE_URLS)[number])) {
      // No state for it: a client naming 20,000 types must not grow this stream.
      this.host.warnClient('request for a resource type this control plane does not serve; ignored', { node: this.nodeId, typeUrl: request.type_url.slice(0, 256) });
      return;
    }
    if ((request.resource_names ?? []).length > MAX_RESOURCE_NAMES) {
      this.host.warnClient('DiscoveryRequest names too many resources; ending the stream', { node: this.nodeId, names: request.resource_names.length, max: MAX_RESOURCE_NAMES });
      this.fail(`at most ${MAX_RESOURCE_NAMES} resource names per request`);
      return;
    }
    const outcome = this.state.onRequest(request);
    switch (outcome.kind) {
      case 'nack':
        this.host.onNack(this, outcome.typeUrl, outcome.version, outcome.error);
        this.host.onSettledChange();
        break;
      case 'ack':
        this.host.counts.acks += 1;
        log.debug('ACK', { node: this.nodeId, type: shortTypeName(outcome.typeUrl), version: outcome.version });
        this.host.onSettledChange();
        break;
      case 'subscribe':
        log.debug('subscribe', { node: this.nodeId, type: shortTypeName(outcome.typeUrl), names: request.resource_names });
        break;
      case 'stale':
        break;
    }
    this.push(request.type_url);
  }

  private push(typeUrl: string): void {
    if (this.ended || !this.started) return;
    const snapshot = this.host.snapshotFor(this.locality);
    const plan: Push | undefined = this.state.planPush(typeUrl, snapshot.get(typeUrl as never), this.host.epoch);
    if (plan === undefined) return;
    this.host.counts.pushes += 1;
    log.debug('push', { node: this.nodeId, type: shortTypeName(typeUrl), version: plan.version, resources: plan.resources.length });
    this.call.write(encodeDiscoveryResponse({ version_info: plan.version, resources: plan.resources.map((r) => r.any), type_url: typeUrl, nonce: plan.nonce }));
  }

  private fail(details: string): void {
    if (this.ended) return;
    this.ended = true;
    this.host.closed(this);
    try {
      this.call.emit('error', { code: Status.INVALID_ARGUMENT, details });
    } catch {
      // Already gone.
    }
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.host.closed(this);
    try {
      this.call.end();
    } catch {
      // Already gone.
    }
  }
}
