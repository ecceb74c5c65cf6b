/**
 * A raw ADS client of the control plane, subscribed to the dispatchers'
 * endpoints (EDS) as a client of one zone: it ACKs every push and prints it
 * as `{"event": "eds", "atMs", "endpoints": [{address, zone, health, priority}]}`,
 * stamped with epochMs() when it arrived. This is the moment the control
 * plane's endpoint set changed, as the scenario times it: the push leaves in
 * the same turn as the registry change, to this stream and to the real
 * clients alike. For each healthy address it had not served before, it also
 * opens a plain gRPC connection and prints `{"event": "connected", "address",
 * "pushMs", "readyMs"}`: how long a new client connection to that dispatcher
 * took right then (the share of a first pick that is not xDS).
 */
import * as grpc from '@grpc/grpc-js';
import { epochMs } from '../../deployed/clock';
import { emit, settings } from '../../deployed/messages';
import { decodeAny, decodeDiscoveryResponse, encodeDiscoveryRequest } from '../../../src/xds/envoy-protos';
import { ADS_METHOD_PATH, clusterName, DEFAULT_LISTENER, EDS_TYPE_URL } from '../../../src/xds/resources';

interface Settings {
  controlPlane: string;
  zone: string;
  region: string;
}

interface Cla {
  endpoints?: {
    locality?: { zone?: string };
    priority?: number;
    lb_endpoints?: { health_status?: string; endpoint?: { address?: { socket_address?: { address?: string; port_value?: number } } } }[];
  }[];
}

function main(): void {
  const s = settings<Settings>();
  const client = new grpc.Client(s.controlPlane, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(ADS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
  const names = [clusterName(DEFAULT_LISTENER)];
  const known = new Set<string>();
  const probeConnection = (address: string, pushMs: number): void => {
    const probe = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    probe.waitForReady(new Date(Date.now() + 5_000), (err) => {
      emit('connected', { address, pushMs, readyMs: epochMs(), ...(err ? { error: err.message } : {}) });
      probe.close();
    });
  };
  call.on('data', (bytes: Buffer) => {
    const atMs = epochMs();
    const response = decodeDiscoveryResponse(bytes);
    const endpoints: { address: string; zone: string; health: string; priority: number }[] = [];
    for (const any of response.resources) {
      const cla = decodeAny(any) as Cla;
      for (const l of cla.endpoints ?? []) {
        for (const e of l.lb_endpoints ?? []) {
          const a = e.endpoint?.address?.socket_address;
          endpoints.push({ address: `${a?.address}:${a?.port_value}`, zone: l.locality?.zone ?? '', health: e.health_status ?? 'UNKNOWN', priority: l.priority ?? 0 });
        }
      }
    }
    emit('eds', { atMs, endpoints });
    for (const e of endpoints) {
      if ((e.health !== 'HEALTHY' && e.health !== 'UNKNOWN') || known.has(e.address)) continue;
      known.add(e.address);
      probeConnection(e.address, atMs);
    }
    call.write(encodeDiscoveryRequest({ version_info: response.version_info, resource_names: names, type_url: EDS_TYPE_URL, response_nonce: response.nonce }));
  });
  call.on('error', (err: Error) => emit('error', { message: `ADS stream: ${err.message}` }));
  call.write(encodeDiscoveryRequest({ node: { id: `failover-eds-watcher-${s.zone}`, locality: { zone: s.zone, region: s.region } }, resource_names: names, type_url: EDS_TYPE_URL }));
  emit('ready', { pid: process.pid });
  process.once('SIGTERM', () => {
    call.cancel();
    client.close();
    process.exit(0);
  });
}

main();
