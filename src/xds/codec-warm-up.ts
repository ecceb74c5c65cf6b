import { decodeDiscoveryRequest, encodeDiscoveryRequest, encodeDiscoveryResponse } from './envoy-protos';
import { EDS_TYPE_URL } from './resources';
import { buildSnapshot, DEFAULT_POLICY } from './snapshot';

let warmedUp = false;

/**
 * Loads the envoy protos and makes protobufjs generate the code of every
 * type the hot path uses, by going once through a request, a snapshot and a
 * response. Done at start: lazily, the first client request blocks the
 * event loop 190-340 ms (about 1 s under load), and heartbeats queue unread.
 */
export function warmUpEnvoyCodec(): void {
  if (warmedUp) return;
  const request = decodeDiscoveryRequest(
    encodeDiscoveryRequest({ version_info: '', node: { id: 'warm-up', locality: { zone: 'z', region: 'r' } }, resource_names: ['x'], type_url: EDS_TYPE_URL, response_nonce: '1', error_detail: { code: 3, message: 'x' } }),
  );
  const snapshot = buildSnapshot([{ id: 'warm-up', ip: '127.0.0.1', port: 1, zone: 'z', region: 'r', health: 'HEALTHY' }], { zone: request.node?.locality?.zone ?? '', region: '' }, DEFAULT_POLICY);
  for (const [typeUrl, resources] of snapshot) encodeDiscoveryResponse({ version_info: '1', resources: [...resources.values()].map((r) => r.any), type_url: typeUrl, nonce: '1' });
  warmedUp = true;
}
