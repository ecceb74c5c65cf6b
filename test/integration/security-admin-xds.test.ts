import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { compileServerOptions } from '../../src/app/server-options';
import { registryService } from '../../src/protocol/service';
import { tokenDigest } from '../../src/security/access-policy';
import { decodeAny, decodeDiscoveryResponse, encodeDiscoveryRequest, type DiscoveryResponse } from '../../src/xds/envoy-protos';
import { ADS_METHOD_PATH, clusterName, DEFAULT_LISTENER, EDS_TYPE_URL } from '../../src/xds/resources';
import { swapFile } from '../support/certs';
import { eventually, startHarness, type Harness } from '../support/server-harness';

/**
 * The admin port's bearer token and the control plane's registration token,
 * on real servers (127.0.0.1 port 0): what is open, what needs the token,
 * what refuses to start, and that an endpoint registered without the token
 * is never served to xDS clients.
 */

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const ADMIN_TOKEN_NEXT = 'admin-token-next-rotation-000';
const REGISTRATION_TOKEN = 'registration-token-abcdefghij';
const WRONG_TOKEN = 'registration-token-WRONG-00000';
const POLICY_TOKEN = 'policy-token-in-a-file-0000001';

const dir = mkdtempSync(path.join(tmpdir(), 'zonal-admin-xds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tokenFile(name: string, ...tokens: string[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, tokens.join('\n') + '\n');
  return file;
}

type RegistryClient = grpc.Client & Record<string, (req: unknown, metadata: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void>;

describe('admin token and xDS registration token', () => {
  const harnesses: Harness[] = [];
  const closers: (() => unknown)[] = [];

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
    for (const h of harnesses.splice(0).reverse()) await h.cleanup();
    vi.restoreAllMocks();
  });

  async function start(input: Parameters<typeof startHarness>[0]): Promise<Harness> {
    const h = await startHarness(input);
    harnesses.push(h);
    return h;
  }

  /** Log lines from now on (not echoed): refusals and bad token files are logged, and the tests wait for them. */
  function captureLog(): string[] {
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stderr.write);
    return lines;
  }

  const get = (address: string, route: string, authorization?: string): Promise<Response> =>
    fetch(`http://${address}${route}`, authorization !== undefined ? { headers: { authorization } } : {});

  it('beyond loopback, the admin port and the embedded control plane refuse to start without their token files', () => {
    expect(() => compileServerOptions({ adminAddress: '0.0.0.0:9464' })).toThrow(/admin port binds 0\.0\.0\.0:9464, beyond loopback: give --admin-token-file/);
    expect(() => compileServerOptions({ adminAddress: '10.1.2.3:9464' })).toThrow(/--admin-token-file/);
    expect(() => compileServerOptions({ adminAddress: '0.0.0.0:9464', adminTokenFile: '/run/admin.token' })).not.toThrow();
    for (const loopback of ['127.0.0.1:9464', 'localhost:9464', '[::1]:9464', '']) expect(() => compileServerOptions({ adminAddress: loopback })).not.toThrow();
    expect(() => compileServerOptions({ xdsAddress: '0.0.0.0:18000' })).toThrow(/embedded xDS control plane binds 0\.0\.0\.0:18000, beyond loopback: give --xds-registration-token-file/);
    expect(() => compileServerOptions({ xdsAddress: '0.0.0.0:18000', xdsRegistrationTokenFile: '/run/reg.token' })).not.toThrow();
  });

  it('with --admin-token-file: every route but /healthz and /readyz needs the bearer token (401 otherwise); /config never shows a token', async () => {
    const policyTokenFile = tokenFile('policy.token', POLICY_TOKEN);
    const policyFile = path.join(dir, 'admin-policy.yaml');
    writeFileSync(policyFile, `identities:\n  - name: p\n    tokenFile: ${policyTokenFile}\n    produce: ["*"]\n`);
    const adminTokens = tokenFile('admin.token', ADMIN_TOKEN);
    const h = await start({ adminAddress: '127.0.0.1:0', adminTokenFile: adminTokens, accessPolicyFile: policyFile, securityPollMs: 100 });
    const admin = h.server.adminAddress;

    for (const route of ['/healthz', '/readyz']) expect((await get(admin, route)).status, route).toBe(200);
    for (const route of ['/metrics', '/config', '/no-such-route']) {
      const refused = await get(admin, route);
      expect(refused.status, route).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="zonal-admin"');
      expect(await refused.text()).toContain('Authorization: Bearer <token>');
    }
    for (const wrong of [`Bearer ${WRONG_TOKEN}`, ADMIN_TOKEN, `Basic ${ADMIN_TOKEN}`, `Bearer ${ADMIN_TOKEN}x`, 'Bearer ']) {
      expect((await get(admin, '/metrics', wrong)).status, wrong).toBe(401);
    }
    const metrics = await get(admin, '/metrics', `Bearer ${ADMIN_TOKEN}`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('zonal_');
    const config = await get(admin, '/config', `Bearer ${ADMIN_TOKEN}`);
    expect(config.status).toBe(200);
    const body = await config.text();
    for (const secret of [ADMIN_TOKEN, POLICY_TOKEN, tokenDigest(POLICY_TOKEN)]) expect(body).not.toContain(secret);
    expect((await get(admin, '/no-such-route', `Bearer ${ADMIN_TOKEN}`)).status).toBe(404);

    // Rotation: a second line lets both in; then the old line goes and only the new one is let in. No restart.
    swapFile(adminTokens, `${ADMIN_TOKEN}\n${ADMIN_TOKEN_NEXT}\n`);
    await eventually(async () => (await get(admin, '/metrics', `Bearer ${ADMIN_TOKEN_NEXT}`)).status === 200, 10_000, 'the second admin token to be accepted');
    expect((await get(admin, '/metrics', `Bearer ${ADMIN_TOKEN}`)).status).toBe(200);
    swapFile(adminTokens, `${ADMIN_TOKEN_NEXT}\n`);
    await eventually(async () => (await get(admin, '/metrics', `Bearer ${ADMIN_TOKEN}`)).status === 401, 10_000, 'the old admin token to be refused');
    expect((await get(admin, '/metrics', `Bearer ${ADMIN_TOKEN_NEXT}`)).status).toBe(200);
    // An unusable edit (no token left) is logged and keeps the last good tokens.
    const log = captureLog();
    swapFile(adminTokens, '# emptied by mistake\n');
    await eventually(() => log.some((l) => l.includes('admin token file changed but cannot be used')), 10_000, 'the unusable admin token file to be logged');
    expect((await get(admin, '/metrics', `Bearer ${ADMIN_TOKEN_NEXT}`)).status).toBe(200);
    expect((await get(admin, '/metrics')).status).toBe(401);
    for (const line of log) for (const secret of [ADMIN_TOKEN, ADMIN_TOKEN_NEXT]) expect(line).not.toContain(secret);
  });

  it('the control plane with a registration token refuses a heartbeat without it and never serves that endpoint; a dispatcher with the token file registers', async () => {
    const registration = tokenFile('registration.token', REGISTRATION_TOKEN);
    const h = await start({ adminAddress: '127.0.0.1:0', xdsAddress: '127.0.0.1:0', xdsRegistrationTokenFile: registration, zone: 'z1', region: 'r1', dispatcherId: 'good-dispatcher', xdsHealthWindowMs: 400 });
    const xds = h.server.xdsAddress;
    const admin = h.server.adminAddress;

    const registry = new (registryService().client)(xds, grpc.credentials.createInsecure()) as RegistryClient;
    closers.push(() => registry.close());
    const heartbeat = (id: string, port: number, token?: string): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => {
        const metadata = new grpc.Metadata();
        if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
        registry['Heartbeat']!({ endpointId: id, address: `127.0.0.1:${port}`, zone: 'z1', region: 'r1', draining: false }, metadata, { deadline: Date.now() + 5_000 }, (error) => resolve(error));
      });

    const none = await heartbeat('rogue', 7999);
    expect(none?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(none?.details).toMatch(/^UNAUTHENTICATED: /);
    expect(none?.details).toContain('--xds-registration-token-file');
    const wrong = await heartbeat('rogue', 7999, WRONG_TOKEN);
    expect(wrong?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(wrong?.details).not.toContain(WRONG_TOKEN);
    // Deregister is guarded too: no one may take the good dispatcher out.
    const deregistered = await new Promise<grpc.ServiceError | null>((resolve) => registry['Deregister']!({ endpointId: 'good-dispatcher' }, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (e) => resolve(e)));
    expect(deregistered?.code).toBe(grpc.status.UNAUTHENTICATED);

    // The dispatcher itself presents the token and is listed.
    const status = async (): Promise<{ endpoints: { id: string; ip: string; port: number; health: string }[]; registrationTokenRequired: boolean; refusedRegistrations: number }> =>
      (await (await get(admin, '/xds/status')).json()) as never;
    await eventually(async () => (await status()).endpoints.some((e) => e.id === 'good-dispatcher' && e.health === 'HEALTHY'), 10_000, 'the dispatcher to register');
    const seen = await status();
    expect(seen.registrationTokenRequired).toBe(true);
    expect(seen.refusedRegistrations).toBe(3);
    expect(seen.endpoints.map((e) => e.id)).toEqual(['good-dispatcher']);

    // A second dispatcher pointed at this control plane with the wrong token file is refused too, and says why.
    const log = captureLog();
    await start({ registerWith: xds, xdsRegistrationTokenFile: tokenFile('wrong.token', WRONG_TOKEN), zone: 'z1', region: 'r1', dispatcherId: 'wrong-token-dispatcher', xdsHealthWindowMs: 400 });
    await eventually(async () => (await status()).refusedRegistrations > 3, 10_000, 'the wrong-token dispatcher to be refused');
    await eventually(() => log.some((l) => l.includes('heartbeat to the control plane failed')), 10_000, 'the refused heartbeat to be logged');
    const refusedLine = log.find((l) => l.includes('heartbeat to the control plane failed'))!;
    expect(refusedLine).toContain('--xds-registration-token-file');
    expect(refusedLine).not.toContain(WRONG_TOKEN);
    expect(refusedLine).not.toContain(REGISTRATION_TOKEN);

    // ADS needs no token, and EDS holds only the dispatcher that had the token.
    const client = new grpc.Client(xds, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(ADS_METHOD_PATH, (b: Buffer) => b, (b: Buffer) => b);
    closers.push(() => {
      call.cancel();
      client.close();
    });
    const responses: DiscoveryResponse[] = [];
    call.on('data', (bytes: Buffer) => responses.push(decodeDiscoveryResponse(bytes)));
    call.on('error', () => undefined);
    call.write(encodeDiscoveryRequest({ node: { id: 'watcher', locality: { zone: 'z1', region: 'r1' } }, resource_names: [clusterName(DEFAULT_LISTENER)], type_url: EDS_TYPE_URL }));
    const edsAddresses = (r: DiscoveryResponse): string[] =>
      r.resources.flatMap((any) =>
        ((decodeAny(any) as { endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { address?: string; port_value?: number } } } }[] }[] }).endpoints ?? []).flatMap((l) =>
          (l.lb_endpoints ?? []).map((e) => `${e.endpoint?.address?.socket_address?.address}:${e.endpoint?.address?.socket_address?.port_value}`),
        ),
      );
    await eventually(() => responses.some((r) => r.type_url === EDS_TYPE_URL && edsAddresses(r).length > 0), 10_000, 'an EDS answer with endpoints');
    const served = new Set(responses.filter((r) => r.type_url === EDS_TYPE_URL).flatMap(edsAddresses));
    expect([...served]).toEqual([h.target]);
    expect((await status()).endpoints.map((e) => e.id)).toEqual(['good-dispatcher']);

    // With the token, a heartbeat is taken.
    expect(await heartbeat('operator-added', 7998, REGISTRATION_TOKEN)).toBeNull();
    expect((await status()).endpoints.map((e) => e.id).sort()).toEqual(['good-dispatcher', 'operator-added']);
  });
});
