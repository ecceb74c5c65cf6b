import { execFile, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RuntimeConfigStatus } from '../../src/config/runtime-config';
import { CLI, killAll, spawnZonal, type Proc } from '../support/processes';

/**
 * `zonal config validate | sign | show | keygen` and `zonal serve --config
 * --config-public-keys`, through real processes of the built CLI (dist/ is
 * built by `npm test`'s pretest, as for the other e2e tests).
 */

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Short-lived `zonal` processes still running (killed in afterEach if a test fails half-way). */
const oneShots = new Set<ChildProcess>();

/** The environment without the caller's ZONAL_* settings, so the flags in each test are all that counts. */
function hermeticEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('ZONAL_')) env[key] = value;
  return { ...env, ZONAL_LOG_LEVEL: 'warn' };
}

/** Runs `zonal <args>` to completion; never rejects, the exit code is part of the result. */
function zonal(args: string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { cwd, env: hermeticEnv(), timeout: 20_000 }, (_err, stdout, stderr) => {
      oneShots.delete(child);
      resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
    });
    oneShots.add(child);
  });
}

/** The key id Zonal prints: first 16 hex digits of the SHA-256 of the raw 32-byte ed25519 key (computed here independently, from the JWK). */
function keyIdOf(publicKeyPem: string): string {
  const jwk = crypto.createPublicKey(publicKeyPem).export({ format: 'jwk' });
  const raw = Buffer.from(String(jwk.x), 'base64url');
  expect(raw.length).toBe(32);
  return crypto.createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

/** Permission bits in octal, e.g. '600'. */
function modeOf(file: string): string {
  return (fs.statSync(file).mode & 0o777).toString(8);
}

/** Polls `probe` (every `everyMs`) until `done` holds; fails after `timeoutMs` with the last value seen. */
async function waitFor<T>(what: string, probe: () => Promise<T> | T, done: (value: T) => boolean, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  for (;;) {
    try {
      last = await probe();
      if (done(last)) return last;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`no ${what} within ${timeoutMs} ms; last seen: ${JSON.stringify(last)}${lastError !== undefined ? `; last error: ${String(lastError)}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

async function configPage(adminAddress: string): Promise<RuntimeConfigStatus> {
  const response = await fetch(`http://${adminAddress}/config`, { signal: AbortSignal.timeout(2_000) });
  if (!response.ok) throw new Error(`/config answered ${response.status}`);
  return (await response.json()) as RuntimeConfigStatus;
}

/** A port nothing listens on (bound, then released). */
function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once everything the process wrote on stderr has been read. */
function stderrDrained(proc: Proc): Promise<void> {
  const stream = proc.child.stderr!;
  return stream.closed ? Promise.resolve() : new Promise((resolve) => stream.once('close', () => resolve()));
}

const GOOD_YAML = ['version: 1', 'keepalive:', '  lbIdleWindowMs: 30000', 'logLevel: warn', ''].join('\n');

describe('zonal config', () => {
  let dir = '';

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-config-cli-'));
  });

  afterEach(async () => {
    for (const child of oneShots) child.kill('SIGKILL');
    oneShots.clear();
    await killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  afterAll(async () => {
    await killAll();
  });

  const at = (name: string): string => path.join(dir, name);

  async function keygen(prefix: string): Promise<{ key: string; pub: string; keyId: string }> {
    const result = await zonal(['config', 'keygen', '--out', at(prefix)], dir);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    return { key: at(`${prefix}.key`), pub: at(`${prefix}.pub`), keyId: keyIdOf(fs.readFileSync(at(`${prefix}.pub`), 'utf8')) };
  }

  /** Signs `text` with `key` through the CLI and returns the signed text. */
  async function sign(name: string, text: string, key: string): Promise<string> {
    fs.writeFileSync(at(`${name}.yaml`), text);
    const result = await zonal(['config', 'sign', at(`${name}.yaml`), '--key', key, '--out', at(`${name}.signed.yaml`)], dir);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    return fs.readFileSync(at(`${name}.signed.yaml`), 'utf8');
  }

  it('keygen --out PREFIX writes PREFIX.key (mode 0600) and PREFIX.pub, a matching ed25519 pair', async () => {
    const result = await zonal(['config', 'keygen', '--out', at('ops')], dir);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ privateKey: at('ops.key'), publicKey: at('ops.pub') });

    expect(modeOf(at('ops.key'))).toBe('600');
    const privateKey = crypto.createPrivateKey(fs.readFileSync(at('ops.key'), 'utf8'));
    expect(privateKey.asymmetricKeyType).toBe('ed25519');
    const publicKey = crypto.createPublicKey(fs.readFileSync(at('ops.pub'), 'utf8'));
    expect(publicKey.asymmetricKeyType).toBe('ed25519');
    // The .pub is the public half of the .key.
    expect(crypto.createPublicKey(privateKey).export({ format: 'jwk' })).toEqual(publicKey.export({ format: 'jwk' }));
  });

  // BUG (src/cli/config-command.ts keygen): fs.writeFileSync(path, key, { mode: 0o600 }) applies the
  // mode only when it creates the file. Over an existing file (a leftover, a touch, a second keygen
  // with the same prefix) it keeps the old mode, so the new private key can end up world-readable,
  // and the old key is overwritten without a word. Either refusing to overwrite (exit 2, file left
  // alone) or forcing 0600 is a fix; this test accepts both.
  it('keygen never leaves a private key readable by others, even over an existing file', async () => {
    fs.writeFileSync(at('ops.key'), 'old\n');
    fs.chmodSync(at('ops.key'), 0o644);
    const result = await zonal(['config', 'keygen', '--out', at('ops')], dir);
    if (result.code === 0) {
      expect(modeOf(at('ops.key')), 'keygen wrote a private key into a file others can read').toBe('600');
    } else {
      expect(result.code).toBe(2);
      expect(fs.readFileSync(at('ops.key'), 'utf8')).toBe('old\n');
    }
  });

  it('validate: a good document exits 0 with JSON; a misspelt key, a range error, a missing file and no action are refused', async () => {
    fs.writeFileSync(at('good.yaml'), GOOD_YAML);
    fs.writeFileSync(at('typo.yaml'), 'version: 1\nkeepalive: { lbIdleWindowMS: 1000 }\n');
    fs.writeFileSync(at('range.yaml'), 'version: 1\ndrainGraceMs: -1\n');
    // Independent invocations run side by side: each start of the CLI costs about a second.
    const [good, typo, range, missing, noFile, noAction] = await Promise.all([
      zonal(['config', 'validate', at('good.yaml')], dir),
      zonal(['config', 'validate', at('typo.yaml')], dir),
      zonal(['config', 'validate', at('range.yaml')], dir),
      zonal(['config', 'validate', at('nope.yaml')], dir),
      zonal(['config', 'validate'], dir),
      zonal(['config'], dir),
    ]);

    expect(good.code, good.stderr).toBe(0);
    const report = JSON.parse(good.stdout) as { file: string; valid: boolean; version: number; settings: RuntimeConfigStatus['settings'] };
    expect(report).toMatchObject({ file: at('good.yaml'), valid: true, version: 1 });
    expect(report.settings.core.keepalive.lbIdleWindowMs).toBe(30_000);
    expect(report.settings.logLevel).toBe('warn');

    expect(typo.code).toBe(1);
    expect(typo.stdout).toBe('');
    expect(typo.stderr).toContain('invalid');
    expect(typo.stderr).toContain('lbIdleWindowMS');

    expect(range.code).toBe(1);
    expect(range.stdout).toBe('');
    expect(range.stderr).toContain('drainGraceMs');

    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`cannot read ${at('nope.yaml')}`);
    expect(missing.stderr).toContain('ENOENT');

    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain('which file?');

    expect(noAction.code).toBe(2);
    expect(noAction.stderr).toContain('needs an action');
    expect(noAction.stderr).toContain('validate FILE');
  });

  it('sign + validate --public-keys: signed passes; unsigned, edited, foreign-key documents fail; invalid documents are not signed', async () => {
    const [ops, other] = await Promise.all([keygen('ops'), keygen('other')]);
    expect(other.keyId).not.toBe(ops.keyId);

    fs.writeFileSync(at('good.yaml'), GOOD_YAML);
    fs.writeFileSync(at('range.yaml'), 'version: 1\ndrainGraceMs: -1\n');
    // Independent invocations run side by side: each start of the CLI costs about a second.
    const [signed, toStdout, foreign, refused] = await Promise.all([
      zonal(['config', 'sign', at('good.yaml'), '--key', ops.key, '--out', at('signed.yaml')], dir),
      zonal(['config', 'sign', at('good.yaml'), '--key', ops.key], dir),
      zonal(['config', 'sign', at('good.yaml'), '--key', other.key, '--out', at('foreign.yaml')], dir),
      zonal(['config', 'sign', at('range.yaml'), '--key', ops.key, '--out', at('range.signed.yaml')], dir),
    ]);

    expect(signed.code, signed.stderr).toBe(0);
    const signedText = fs.readFileSync(at('signed.yaml'), 'utf8');
    const [firstLine, ...rest] = signedText.split('\n');
    expect(firstLine).toMatch(new RegExp(`^#zonal-signature ed25519 ${ops.keyId} [A-Za-z0-9+/]+={0,2}$`));
    expect(rest.join('\n')).toBe(GOOD_YAML);
    // Without --out the signed document goes to stdout (ed25519 is deterministic: same bytes).
    expect(toStdout.code, toStdout.stderr).toBe(0);
    expect(toStdout.stdout).toBe(signedText);
    expect(foreign.code, foreign.stderr).toBe(0);

    // Signing an invalid document is refused, and nothing is written.
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('not a valid runtime config');
    expect(refused.stderr).toContain('drainGraceMs');
    expect(refused.stdout).toBe('');

    // One byte of the body changed after signing: 30000 -> 30001, still a valid document.
    const bytes = Buffer.from(signedText, 'utf8');
    const at30000 = bytes.indexOf('30000', firstLine!.length);
    expect(at30000).toBeGreaterThan(firstLine!.length);
    bytes[at30000 + 4] = '1'.charCodeAt(0);
    fs.writeFileSync(at('tampered.yaml'), bytes);

    const [verified, unsigned, tamperedWithoutKeys, tampered, foreignCheck, rotation] = await Promise.all([
      zonal(['config', 'validate', at('signed.yaml'), '--public-keys', ops.pub], dir),
      zonal(['config', 'validate', at('good.yaml'), '--public-keys', ops.pub], dir),
      zonal(['config', 'validate', at('tampered.yaml')], dir),
      zonal(['config', 'validate', at('tampered.yaml'), '--public-keys', ops.pub], dir),
      zonal(['config', 'validate', at('foreign.yaml'), '--public-keys', ops.pub], dir),
      // Both keys configured (rotation): the other key's signature is accepted too.
      zonal(['config', 'validate', at('foreign.yaml'), '--public-keys', `${ops.pub},${other.pub}`], dir),
    ]);

    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ valid: true, version: 1 });

    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toContain('bad_signature');
    expect(unsigned.stderr).toContain('unsigned');

    expect(tamperedWithoutKeys.code, 'the edit alone must not make the document invalid').toBe(0);
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toContain('bad_signature');
    expect(tampered.stderr).toContain(`the signature by key ${ops.keyId} does not match`);

    expect(foreignCheck.code).toBe(1);
    expect(foreignCheck.stderr).toContain('bad_signature');
    expect(foreignCheck.stderr).toContain(`signed with key ${other.keyId}`);
    expect(foreignCheck.stderr).toContain(ops.keyId);

    expect(rotation.code, rotation.stderr).toBe(0);

    expect(fs.existsSync(at('range.signed.yaml'))).toBe(false);
  });

  it('a dispatcher applies signed updates of its --config file, refuses an unsigned one, keeps the last good, and restarts from it', async () => {
    const ops = await keygen('ops');
    const runtimePath = at('runtime.yaml');
    const dataDir = at('data');
    const lastGoodPath = path.join(dataDir, 'runtime-config.last-good');
    const [v1, v2, v3] = await Promise.all([
      sign('v1', GOOD_YAML, ops.key),
      sign('v2', ['version: 2', 'keepalive:', '  lbIdleWindowMs: 20000', 'logLevel: error', ''].join('\n'), ops.key),
      sign('v3', ['version: 3', 'keepalive:', '  lbIdleWindowMs: 10000', 'logLevel: warn', ''].join('\n'), ops.key),
    ]);
    fs.writeFileSync(runtimePath, v1);

    const serveArgs = [
      'serve',
      '--grpc-address', '127.0.0.1:0',
      '--admin-address', '127.0.0.1:0',
      '--xds-address', 'off',
      '--data-dir', dataDir,
      '--config', runtimePath,
      '--config-public-keys', ops.pub,
    ];
    // info, so the first "applied" line proves we read its log, and the later silence proves logLevel took effect.
    const first = spawnZonal([...serveArgs, '--log-level', 'info']);
    const admin = String((await first.waitForEvent('listening'))['adminAddress']);
    // The file was written just now: it is applied once it has stayed unchanged for the stability window (1 s).
    await waitFor('version 1 in force', () => configPage(admin), (s) => s.version >= 1);

    const shown = await zonal(['config', 'show', '--admin-address', admin], dir);
    expect(shown.code, shown.stderr).toBe(0);
    const onV1 = JSON.parse(shown.stdout) as RuntimeConfigStatus;
    expect(onV1).toMatchObject({ version: 1, source: `file ${runtimePath}`, appliedFrom: `file ${runtimePath}`, signedBy: [ops.keyId] });
    expect(onV1.counts).toMatchObject({ applied: 1, bad_signature: 0, invalid: 0 });
    expect(onV1.settings.core.keepalive.lbIdleWindowMs).toBe(30_000);
    expect(onV1.settings.logLevel).toBe('warn');

    // Publish version 2 by overwriting the file in place, and time publish -> apply.
    const publishedAt = Date.now();
    fs.writeFileSync(runtimePath, v2);
    const onV2 = await waitFor('version 2 in force', () => configPage(admin), (s) => s.version >= 2);
    const observedMs = Date.now() - publishedAt;
    const serverSideMs = Date.parse(onV2.appliedAt ?? '') - publishedAt;
    console.log(`[figures] publish -> apply of version 2 (file overwrite): applied ${serverSideMs} ms after the write (dispatcher's appliedAt), seen on /config after ${observedMs} ms (50 ms polling)`);
    expect(onV2.version).toBe(2);
    expect(onV2.settings.core.keepalive.lbIdleWindowMs).toBe(20_000);
    expect(onV2.settings.logLevel).toBe('error');
    expect(onV2.counts).toMatchObject({ applied: 2, bad_signature: 0 });

    // An unsigned version 3 is refused: version 2 stays, and the refusal is counted.
    fs.writeFileSync(runtimePath, ['version: 3', 'keepalive:', '  lbIdleWindowMs: 10000', ''].join('\n'));
    const refused = await waitFor('the unsigned version 3 counted as bad_signature', () => configPage(admin), (s) => s.counts.bad_signature >= 1);
    expect(refused.counts.bad_signature).toBe(1);
    expect(refused.version).toBe(2);
    expect(refused.settings.core.keepalive.lbIdleWindowMs).toBe(20_000);
    expect(refused.lastRefusal).toMatchObject({ result: 'bad_signature', version: 3, from: `file ${runtimePath}` });
    expect(refused.lastRefusal?.reason).toContain('unsigned');
    const shownAfter = await zonal(['config', 'show', '--admin-address', admin], dir);
    expect(shownAfter.code, shownAfter.stderr).toBe(0);
    expect(JSON.parse(shownAfter.stdout)).toMatchObject({ version: 2, counts: { bad_signature: 1 } });

    // The snapshot is written after the apply (asynchronously): wait for it, then it must be v2's text exactly.
    await waitFor('the last-good snapshot of version 2', () => (fs.existsSync(lastGoodPath) ? fs.readFileSync(lastGoodPath, 'utf8') : ''), (text) => text === v2, 5_000);
    expect(fs.readFileSync(lastGoodPath, 'utf8')).toBe(v2);
    expect(modeOf(lastGoodPath)).toBe('600');

    expect(await first.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    await stderrDrained(first);
    expect(fs.readFileSync(lastGoodPath, 'utf8')).toBe(v2);
    expect(fs.readdirSync(dataDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const log = first.stderr.join('\n');
    expect(log).toMatch(/runtime config applied.*"version":1/);
    // v2 set logLevel error, so the (warn) refusal of version 3 was not logged.
    expect(log).not.toContain('runtime config update refused');

    // Restart with the config file gone: the last-good snapshot brings back version 2 at once.
    fs.rmSync(runtimePath);
    const second = spawnZonal(serveArgs);
    const admin2 = String((await second.waitForEvent('listening'))['adminAddress']);
    const shownRestart = await zonal(['config', 'show', '--admin-address', admin2], dir);
    expect(shownRestart.code, shownRestart.stderr).toBe(0);
    const restarted = JSON.parse(shownRestart.stdout) as RuntimeConfigStatus;
    expect(restarted).toMatchObject({ version: 2, appliedFrom: 'last-good snapshot', source: `file ${runtimePath}` });
    expect(restarted.settings.core.keepalive.lbIdleWindowMs).toBe(20_000);
    expect(restarted.settings.logLevel).toBe('error');
    expect(restarted.counts).toMatchObject({ applied: 1, bad_signature: 0 });

    // The file source still follows the path: a signed version 3 created after the start is applied.
    fs.writeFileSync(runtimePath, v3);
    const onV3 = await waitFor('version 3 in force after the restart', () => configPage(admin2), (s) => s.version >= 3);
    expect(onV3).toMatchObject({ version: 3, appliedFrom: `file ${runtimePath}` });
    expect(onV3.settings.core.keepalive.lbIdleWindowMs).toBe(10_000);

    expect(await second.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(fs.readFileSync(lastGoodPath, 'utf8')).toBe(v3);
  });

  it('show against an address where nothing listens exits 1 and says it cannot reach it', async () => {
    const address = `127.0.0.1:${await unusedPort()}`;
    const result = await zonal(['config', 'show', '--admin-address', address], dir);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`cannot reach the dispatcher's admin address ${address}`);
  });

  it('--help lists every flag with its environment variable', async () => {
    const result = await zonal(['config', '--help'], dir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('Usage: zonal config');
    for (const action of ['validate FILE', 'sign FILE --key KEY', 'show', 'keygen --out PREFIX']) expect(result.stdout).toContain(action);
    for (const [flag, env] of [
      ['key', 'ZONAL_CONFIG_SIGNING_KEY'],
      ['out', 'ZONAL_CONFIG_OUT'],
      ['public-keys', 'ZONAL_CONFIG_PUBLIC_KEYS'],
      ['admin-address', 'ZONAL_ADMIN_ADDRESS'],
    ] as const) {
      // The flag line, and on the next line its environment variable.
      expect(result.stdout).toMatch(new RegExp(`^  --${flag} <string>\\n {6}${env} `, 'm'));
    }
  });
});
