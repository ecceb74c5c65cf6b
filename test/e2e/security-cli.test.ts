import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { tokenDigest, TOKEN_PATTERN } from '../../src/security/access-policy';
import { SPIFFE_POLICY_LINES, testCerts } from '../support/certs';
import { CLI, killAll, spawnZonal } from '../support/processes';
import { eventually } from '../support/server-harness';

const run = promisify(execFile);

/**
 * The built `zonal` command (dist/cli/main.js; `npm run build` first) as an
 * operator runs it: tokens made and hashed, a dispatcher with mutual TLS
 * and an access policy, and a worker and a producer that present their
 * certificates (or a token file).
 */
describe('zonal CLI with TLS, an access policy and tokens', () => {
  const certs = testCerts();
  const dir = mkdtempSync(path.join(tmpdir(), 'zonal-security-cli-'));

  afterAll(async () => {
    await killAll();
    rmSync(dir, { recursive: true, force: true });
    certs.cleanup();
  });

  /** Runs `zonal <args>` to the end; resolves with its exit code and output, whatever the code. */
  async function zonal(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ZONAL_LOG_LEVEL: 'warn', ZONAL_XDS_ADDRESS: 'off', ...env }, timeout: 30_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  /**
   * What a command printed on stderr besides Node's DEP0123 warning: grpc-js
   * sets the TLS SNI name to the target's IP (127.0.0.1), and Node warns once.
   */
  const complaints = (stderr: string): string[] =>
    stderr.split('\n').filter((l) => l.trim() !== '' && !l.includes('[DEP0123]') && !l.includes('--trace-deprecation'));

  const json = (stdout: string): Record<string, unknown>[] =>
    stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('`zonal token new` and `zonal token hash` print digests that match tokenDigest', async () => {
    const printed = await zonal(['token', 'new']);
    expect(printed.code).toBe(0);
    const [made] = json(printed.stdout) as [{ token: string; tokenSha256: string }];
    expect(made.token).toMatch(TOKEN_PATTERN);
    expect(made.token).toHaveLength(43);
    expect(made.tokenSha256).toBe(tokenDigest(made.token));

    const file = path.join(dir, 'new.token');
    const written = await zonal(['token', 'new', '--out', file]);
    expect(written.code).toBe(0);
    const [out] = json(written.stdout) as [{ tokenFile: string; tokenSha256: string; token?: string }];
    expect(out.tokenFile).toBe(file);
    expect(out.token).toBeUndefined();
    const token = readFileSync(file, 'utf8').trim();
    expect(written.stdout).not.toContain(token);
    expect(out.tokenSha256).toBe(tokenDigest(token));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // It never overwrites a token file.
    const again = await zonal(['token', 'new', '--out', file]);
    expect(again.code).not.toBe(0);
    expect(readFileSync(file, 'utf8').trim()).toBe(token);

    const hashed = await zonal(['token', 'hash', '--file', file]);
    expect(hashed.code).toBe(0);
    expect(json(hashed.stdout)).toEqual([{ tokenSha256: tokenDigest(token) }]);
    // The first line is the token a client presents: that is the one hashed.
    const twoLines = path.join(dir, 'two-lines.token');
    writeFileSync(twoLines, `${token}\nsecond-token-0123456789abc\n`);
    expect(json((await zonal(['token', 'hash', '--file', twoLines])).stdout)).toEqual([{ tokenSha256: tokenDigest(token) }]);

    expect((await zonal(['token', 'hash'])).code).toBe(2);
    const short = path.join(dir, 'short.token');
    writeFileSync(short, 'tiny-secret\n');
    const shortHash = await zonal(['token', 'hash', '--file', short]);
    expect(shortHash.code).toBe(2);
    expect(shortHash.stderr).not.toContain('tiny-secret');
  });

  it('serves mutual TLS with an access policy: a TLS worker and `zonal submit --wait` with client certificates complete tasks; a token file selects its identity; no token is printed', async () => {
    // TLS without a policy does not start.
    const refused = await zonal(['serve', '--grpc-address', '127.0.0.1:0', '--admin-address', '', '--data-dir', path.join(dir, 'refused'), '--tls-cert', certs.server.cert, '--tls-key', certs.server.key]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--access-policy');

    const opsToken = path.join(dir, 'ops.token');
    const opsMade = json((await zonal(['token', 'new', '--out', opsToken])).stdout)[0] as { tokenSha256: string };
    const ops = readFileSync(opsToken, 'utf8').trim();
    const badToken = path.join(dir, 'bad.token');
    const bad = 'not-a-known-token-' + 'x'.repeat(24);
    writeFileSync(badToken, `${bad}\n`);
    const policy = path.join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        ...SPIFFE_POLICY_LINES,
        '  - name: ops',
        `    tokenSha256: ${opsMade.tokenSha256}`,
        '    produce: ["*"]',
        '',
      ].join('\n'),
    );
    const tlsServe = ['--tls-cert', certs.server.cert, '--tls-key', certs.server.key, '--tls-client-ca', certs.ca, '--access-policy', policy, '--security-poll-ms', '100'];
    const server = spawnZonal(['serve', '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), ...tlsServe], { ZONAL_LOG_LEVEL: 'debug' });
    const listening = await server.waitForEvent('listening');
    const target = String(listening['grpcAddress']);

    const worker = spawnZonal(['worker', '--target', target, '--queues', 'jobs', '--slots', '2', '--tls-ca', certs.ca, '--tls-cert', certs.workerA.cert, '--tls-key', certs.workerA.key], { ZONAL_LOG_LEVEL: 'debug' });
    await worker.waitForEvent('worker-running');

    const asProducerB = ['--tls-ca', certs.ca, '--tls-cert', certs.producerB.cert, '--tls-key', certs.producerB.key];
    const submitted = await zonal(['submit', '--target', target, '--queue', 'jobs', '--payload', 'secure-{i}', '--count', '2', '--wait', ...asProducerB]);
    expect(complaints(submitted.stderr)).toEqual([]);
    expect(submitted.code).toBe(0);
    const results = json(submitted.stdout) as { state: string; result: string }[];
    expect(results.map((r) => r.state)).toEqual(['COMPLETED', 'COMPLETED']);
    expect(results.map((r) => r.result).sort()).toEqual(['secure-0', 'secure-1']);

    // producer-b's certificate may not produce to another queue...
    const denied = await zonal(['submit', '--target', target, '--queue', 'elsewhere', ...asProducerB]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('PERMISSION_DENIED');
    expect(denied.stderr).toContain('identity "producer-b" may not use queue "elsewhere"');
    // ...but with ops's token file, over the same certificate, the token names the caller.
    // The client presents the first line of its token file (a rotation adds a second line).
    const opsTwoLines = path.join(dir, 'ops-two-lines.token');
    writeFileSync(opsTwoLines, `${ops}\nnext-token-not-yet-in-the-policy-000\n`);
    const withToken = await zonal(['submit', '--target', target, '--queue', 'elsewhere', '--token-file', opsTwoLines, ...asProducerB]);
    expect(complaints(withToken.stderr)).toEqual([]);
    expect(withToken.code).toBe(0);
    expect((json(withToken.stdout)[0] as { taskId: string }).taskId).toMatch(/\S/);
    // An unknown token is refused, and not echoed.
    const unknown = await zonal(['submit', '--target', target, '--queue', 'jobs', '--token-file', badToken, ...asProducerB]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("zonal: UNAUTHENTICATED: the bearer token is not in this dispatcher's access policy (the token is not shown)");
    expect(unknown.stderr + unknown.stdout).not.toContain(bad);
    expect((await worker.kill('SIGTERM')).code).toBe(0);
    expect((await server.kill('SIGTERM')).code).toBe(0);
    // The dispatcher logged at debug level the whole time; no token is in what it or the worker printed.
    const printed = [...server.stderr, ...server.events.map((e) => JSON.stringify(e)), ...worker.stderr, ...worker.events.map((e) => JSON.stringify(e))].join('\n');
    expect(server.stderr.length).toBeGreaterThan(0);
    for (const secret of [ops, bad]) expect(printed).not.toContain(secret);
  });

  it('`zonal xds --registration-token-file`: a dispatcher with the same token file registers, one with another token is refused and not listed', async () => {
    const registration = path.join(dir, 'registration.token');
    await zonal(['token', 'new', '--out', registration]);
    const wrong = path.join(dir, 'wrong-registration.token');
    await zonal(['token', 'new', '--out', wrong]);
    const cp = spawnZonal(['xds', '--address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--registration-token-file', registration, '--health-window-ms', '400']);
    const cpListening = await cp.waitForEvent('listening');
    const xds = String(cpListening['xdsAddress']);
    const status = async (): Promise<{ endpoints: { id: string; ip: string; port: number; health: string }[]; refusedRegistrations: number }> =>
      (await (await fetch(`http://${String(cpListening['adminAddress'])}/xds/status`)).json()) as never;

    const serve = (id: string, tokenFile: string) =>
      spawnZonal(['serve', '--grpc-address', '127.0.0.1:0', '--admin-address', '', '--data-dir', path.join(dir, `data-${id}`), '--register-with', xds, '--xds-registration-token-file', tokenFile, '--dispatcher-id', id, '--zone', 'z1']);
    const good = serve('good', registration);
    const goodAddress = String((await good.waitForEvent('listening'))['grpcAddress']);
    const impostor = serve('impostor', wrong);
    await impostor.waitForEvent('listening');

    await eventually(async () => (await status()).endpoints.some((e) => e.id === 'good' && e.health === 'HEALTHY'), 15_000, 'the dispatcher with the token to register');
    await eventually(async () => (await status()).refusedRegistrations > 0, 15_000, 'the dispatcher with another token to be refused');
    const seen = await status();
    expect(seen.endpoints.map((e) => [e.id, `${e.ip}:${e.port}`])).toEqual([['good', goodAddress]]);

    expect((await impostor.kill('SIGTERM')).code).toBe(0);
    expect((await good.kill('SIGTERM')).code).toBe(0);
    expect((await cp.kill('SIGTERM')).code).toBe(0);
    const printed = [...cp.stderr, ...good.stderr, ...impostor.stderr].join('\n');
    for (const file of [registration, wrong]) expect(printed).not.toContain(readFileSync(file, 'utf8').trim());
  });
});
