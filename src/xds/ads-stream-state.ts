import type { DiscoveryRequest } from './envoy-protos';
import { emptyMeansAll } from './resources';
import { versionOf, type Resource } from './snapshot';

/**
 * ACK/NACK bookkeeping of one ADS stream, per resource type (state of the
 * world, v3). Pure: the server feeds it requests and asks what to push.
 *
 * Invariants, per type:
 * - `sentNonce` is the nonce of the last response; a request naming any
 *   other nonce is stale and changes nothing but the subscription.
 * - `ackedVersion` is the last version the client accepted: its config.
 * - a version the client NACKed is never pushed to it again; the next push
 *   happens only when the content changes to another version.
 */
export interface TypeState {
  names: Set<string>;
  wildcard: boolean;
  sentVersion: string;
  sentNonce: string;
  ackedVersion: string;
  /** The last version the client NACKed (shown at /xds/status). */
  nackedVersion: string;
  /** Every version the client NACKed on this stream (bounded): none is pushed to it again. */
  nackedVersions: Set<string>;
  lastNack: string;
  acks: number;
  nacks: number;
  /** Monotonic counter of the change that produced `sentVersion` (see AdsServer.awaitPropagated). */
  sentEpoch: number;
}

export type RequestOutcome =
  | { kind: 'subscribe'; typeUrl: string }
  | { kind: 'ack'; typeUrl: string; version: string }
  | { kind: 'nack'; typeUrl: string; version: string; error: string }
  | { kind: 'stale'; typeUrl: string };

const MAX_NACKED_REMEMBERED = 32;
/** Longest NACK text kept (a client's error_detail can be megabytes). */
export const MAX_NACK_CHARS = 1_024;

export interface Push {
  typeUrl: string;
  version: string;
  nonce: string;
  resources: Resource[];
}

export class AdsStreamState {
  readonly types = new Map<string, TypeState>();
  private nonceCounter = 0;

  /** Applies one request. */
  onRequest(request: DiscoveryRequest): RequestOutcome {
    const typeUrl = request.type_url;
    let state = this.types.get(typeUrl);
    if (state === undefined) {
      state = { names: new Set(), wildcard: false, sentVersion: '', sentNonce: '', ackedVersion: '', nackedVersion: '', nackedVersions: new Set(), lastNack: '', acks: 0, nacks: 0, sentEpoch: 0 };
      this.types.set(typeUrl, state);
    }
    const names = request.resource_names ?? [];
    state.names = new Set(names);
    state.wildcard = names.length === 0 && emptyMeansAll(typeUrl);
    if (request.response_nonce === '' || request.response_nonce === undefined) return { kind: 'subscribe', typeUrl };
    if (request.response_nonce !== state.sentNonce) return { kind: 'stale', typeUrl };
    const error = request.error_detail?.message;
    if (request.error_detail !== undefined && (error !== undefined || request.error_detail.code !== undefined)) {
      state.nacks += 1;
      state.nackedVersion = state.sentVersion;
      state.nackedVersions.add(state.sentVersion);
      if (state.nackedVersions.size > MAX_NACKED_REMEMBERED) {
        const oldest = state.nackedVersions.values().next().value;
        if (oldest !== undefined) state.nackedVersions.delete(oldest);
      }
      state.lastNack = (error ?? `code ${request.error_detail.code}`).slice(0, MAX_NACK_CHARS);
      return { kind: 'nack', typeUrl, version: state.sentVersion, error: state.lastNack };
    }
    state.acks += 1;
    state.ackedVersion = request.version_info;
    return { kind: 'ack', typeUrl, version: request.version_info };
  }

  /**
   * What to send for `typeUrl` given the resources available now, or
   * undefined when the client already has this content or rejected it.
   */
  planPush(typeUrl: string, available: ReadonlyMap<string, Resource> | undefined, epoch: number): Push | undefined {
    const state = this.types.get(typeUrl);
    if (state === undefined || available === undefined) return undefined;
    const resources: Resource[] = [];
    if (state.wildcard) resources.push(...available.values());
    else for (const name of state.names) {
      const r = available.get(name);
      if (r !== undefined) resources.push(r);
    }
    if (!state.wildcard && state.names.size === 0) {
      // Unsubscribed: the client dropped its copy, so a later resubscription must be answered anew.
      state.sentVersion = '';
      state.sentEpoch = Math.max(state.sentEpoch, epoch);
      return undefined;
    }
    const version = versionOf(resources);
    if (version === state.sentVersion || state.nackedVersions.has(version)) {
      // The client already has this content (or rejected it): it is as current as it will get.
      state.sentEpoch = Math.max(state.sentEpoch, epoch);
      return undefined;
    }
    state.sentVersion = version;
    state.sentNonce = String(++this.nonceCounter);
    state.sentEpoch = epoch;
    return { typeUrl, version, nonce: state.sentNonce, resources };
  }

  /** True when the client accepted (or rejected) everything sent for `typeUrl` since `epoch`. */
  settled(typeUrl: string, epoch: number): boolean {
    const state = this.types.get(typeUrl);
    if (state === undefined || (!state.wildcard && state.names.size === 0)) return true;
    if (state.sentEpoch < epoch) return false;
    return state.ackedVersion === state.sentVersion || state.nackedVersions.has(state.sentVersion);
  }
}
