import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registryService } from '../../src/protocol/service';
import { decodeAny, decodeDiscoveryResponse, encodeDiscoveryRequest, type DiscoveryResponse } from '../../src/xds/envoy-protos';
import { ADS_METHOD_PATH, clusterName, DEFAULT_LISTENER, EDS_TYPE_URL } from '../../src/xds/resources';
import { startControlPlane, type RunningControlPlane } from '../../src/xds/xds-server';
import { eventually } from '../support/server-harness';

/** A control plane in this process, on 127.0.0.1 port 0, against raw ADS and Registry clients. */
describe('control plane against hostile registrations and clients', () => {
  const closers: (() => unknown)[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const close of closers.splice(0).reverse()) await close();
  });

  async function controlPlane(options: { healthWindowMs?: number; warmUpMs?: number } = {}): Promise<RunningControlPlane> {
    const cp = await startControlPlane({ address: '127.0.0.1:0', healthWindowMs: 1_000, warmUpMs: 0, ...options });
    closers.push(() => cp.stop());
    return cp;
  }

  function registry(address: string): grpc.Client & Record<string, (req: unknown, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void> {
    const client = new (registryService().client)(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 16 * 1024 * 1024 });
    closers.push(() => client.close());
    return client as never;
  }

  function heartbeat(address: string, request: Record<string, unknown>): Promise<{ error: grpc.ServiceError | null; response: unknown }> {
    const client = registry(address);
    return new Promise((resolve) => client['Heartbeat']!(request, { deadline: Date.now() + 5_000 }, (error, response) => resolve({ error, response })));
  }

  function ads(address: string): { call: grpc.ClientDuplexStream<Buffer, Buffer>; responses: DiscoveryResponse[]; ended: Promise<grpc.StatusObject | Error> } {
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(ADS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
    const responses: DiscoveryResponse[] = [];
    call.on('data', (bytes: Buffer) => responses.push(decodeDiscoveryResponse(bytes)));
    const ended = new Promise<grpc.StatusObject | Error>((resolve) => {
      call.on('status', resolve);
      call.on('error', resolve);
    });
    closers.push(() => {
      call.cancel();
      client.close();
    });
    return { call, responses, ended };
  }

  const EDS_NAMES = [clusterName(DEFAULT_LISTENER)];
  const edsAddresses = (r: DiscoveryResponse): string[] =>
    r.resources.flatMap((any) =>
      ((decodeAny(any) as { endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { address?: string; port_value?: number } } } }[] }[] }).endpoints ?? []).flatMap((l) =>
        (l.lb_endpoints ?? []).map((e) => `${e.endpoint?.address?.socket_address?.address}:${e.endpoint?.address?.socket_address?.port_value}`),
      ),
    );

  it('refuses 2.2 MB zone names with a clear error; nothing is served from them and a normal dispatcher still registers', async () => {
    const cp = await controlPlane();
    const huge = 'z'.repeat(2_200_000);
    for (const id of ['big1', 'big2']) {
      const { error } = await heartbeat(cp.address, { endpointId: id, address: `127.0.0.1:${id === 'big1' ? 7001 : 7002}`, zone: huge, region: 'r1' });
      expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error?.details).toBe('FIELD_TOO_LONG: zone is 2200000 characters long; at most 64 are allowed');
    }
    const long = await heartbeat(cp.address, { endpointId: 'x', address: '127.0.0.1:7003', zone: 'a', region: 'r'.repeat(65) });
    expect(long.error?.details).toMatch(/^FIELD_TOO_LONG: region is 65 characters/);
    const ok = await heartbeat(cp.address, { endpointId: 'd1', address: '127.0.0.1:7004', zone: 'a', region: 'r1' });
    expect(ok.error).toBeNull();
    expect(cp.plane.registry.endpoints().map((e) => e.id)).toEqual(['d1']);
  });

  it('a second live dispatcher at the same address: the list holds the address once, and the replaced one is told why', async () => {
    const cp = await controlPlane();
    const watcher = ads(cp.address);
    watcher.call.write(encodeDiscoveryRequest({ node: { id: 'w', locality: { zone: 'a', region: 'r1' } }, resource_names: EDS_NAMES, type_url: EDS_TYPE_URL }));
    expect((await heartbeat(cp.address, { endpointId: 'first', address: '127.0.0.1:7000', zone: 'a', region: 'r1' })).error).toBeNull();
    expect((await heartbeat(cp.address, { endpointId: 'second', address: '127.0.0.1:7000', zone: 'a', region: 'r1' })).error).toBeNull();
    const again = await heartbeat(cp.address, { endpointId: 'first', address: '127.0.0.1:7000', zone: 'a', region: 'r1' });
    expect(again.error?.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(again.error?.details).toContain('ADDRESS_TAKEN: address 127.0.0.1:7000 was registered again by dispatcher "second"');
    await eventually(() => watcher.responses.length > 0 && edsAddresses(watcher.responses.at(-1)!).length > 0, 5_000, 'an EDS push with the endpoint');
    expect(edsAddresses(watcher.responses.at(-1)!)).toEqual(['127.0.0.1:7000']);
    for (const r of watcher.responses) expect(new Set(edsAddresses(r)).size).toBe(edsAddresses(r).length);
  });

  it('20,000 requests for unknown types: a bounded number of log lines, no per-type state, and the stream keeps working', async () => {
    const cp = await controlPlane();
    let warnLines = 0;
    const write = process.stderr.write.bind(process.stderr);
    vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: never[]) => {
      if (String(chunk).includes('"level":"warn"') && String(chunk).includes('"mod":"xds"')) warnLines += 1;
      else write(chunk, ...rest);
      return true;
    }) as typeof process.stderr.write);
    const client = ads(cp.address);
    client.call.write(encodeDiscoveryRequest({ node: { id: 'flooder', locality: { zone: 'a' } }, resource_names: [], type_url: 'type.googleapis.com/unknown.Type0' }));
    for (let i = 1; i < 20_000; i++) client.call.write(encodeDiscoveryRequest({ resource_names: [`r${i}`], type_url: `type.googleapis.com/unknown.Type${i}` }));
    client.call.write(encodeDiscoveryRequest({ resource_names: EDS_NAMES, type_url: EDS_TYPE_URL }));
    await eventually(() => client.responses.some((r) => r.type_url === EDS_TYPE_URL), 30_000, 'the EDS answer after the flood');
    const clients = cp.plane.status()['clients'] as { node: string; types: Record<string, unknown> }[];
    console.log(`20,000 unknown-type requests: ${warnLines} warning lines; the stream holds state for ${Object.keys(clients[0]!.types).length} type(s)`);
    expect(warnLines).toBeLessThanOrEqual(21);
    expect(Object.keys(clients[0]!.types)).toEqual(['ClusterLoadAssignment']);
  }, 60_000);

  it('a request naming too many resources ends only that stream, with a clear status', async () => {
    const cp = await controlPlane();
    const client = ads(cp.address);
    client.call.write(encodeDiscoveryRequest({ node: { id: 'n' }, resource_names: Array.from({ length: 101 }, (_, i) => `r${i}`), type_url: EDS_TYPE_URL }));
    const status = (await client.ended) as grpc.StatusObject;
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toContain('at most 100 resource names');
  });

  it('after start, endpoint answers wait for the warm-up (a health window), then hold every dispatcher that registered meanwhile', async () => {
    const startedAtMs = Date.now();
    const cp = await controlPlane({ healthWindowMs: 600, warmUpMs: undefined });
    expect(cp.plane.serving).toBe(false);
    const client = ads(cp.address);
    client.call.write(encodeDiscoveryRequest({ node: { id: 'early', locality: { zone: 'a', region: 'r1' } }, resource_names: EDS_NAMES, type_url: EDS_TYPE_URL }));
    expect((await heartbeat(cp.address, { endpointId: 'da', address: '127.0.0.1:7100', zone: 'a', region: 'r1' })).error).toBeNull();
    expect((await heartbeat(cp.address, { endpointId: 'db', address: '127.0.0.1:7200', zone: 'b', region: 'r1' })).error).toBeNull();
    await eventually(() => client.responses.length > 0, 5_000, 'the first EDS answer');
    const first = client.responses[0]!;
    expect(Date.now() - startedAtMs).toBeGreaterThanOrEqual(600);
    expect(edsAddresses(first).sort()).toEqual(['127.0.0.1:7100', '127.0.0.1:7200']);
    expect(cp.plane.serving).toBe(true);
  });
});
