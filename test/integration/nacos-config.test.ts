import * as crypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { NacosSource } from '../../src/config/nacos-source';
import { parseNacosUrl } from '../../src/config/nacos-url';
import { RuntimeConfig } from '../../src/config/runtime-config';
import { DEFAULT_BASELINE } from '../../src/config/runtime-schema';
import { PublicKeyRing, signDocument } from '../../src/config/signature';
import { NacosTestServer } from '../support/nacos-test-server';
import { eventually, startHarness, type Harness } from '../support/server-harness';

/**
 * The runtime config from Nacos, through the real npm `nacos` DataClient
 * talking HTTP to the protocol-level test server (test/support).
 */
const DATA_ID = 'zonal-runtime';
const GROUP = 'ZONAL';

const doc = (version: number, extra: Record<string, unknown> = {}): string => stringify({ version, publishedAt: new Date().toISOString(), ...extra });

/** Resource kinds that would keep the process alive or leak: timers, sockets, pending requests. */
function liveHandles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) {
    if (kind === 'Timeout' || kind === 'TCPSocketWrap' || kind === 'TCPWRAP' || kind === 'GetAddrInfoReqWrap') out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}

describe('runtime config from Nacos', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function nacos(holdMs = 29_500): Promise<NacosTestServer> {
    const server = await NacosTestServer.start({ holdMs });
    cleanups.push(() => server.close());
    return server;
  }

  function tempDir(): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'zonal-nacos-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  function follow(server: NacosTestServer, options: { dataDir?: string; keys?: PublicKeyRing; env?: NodeJS.ProcessEnv } = {}): RuntimeConfig {
    const source = new NacosSource(parseNacosUrl(`nacos://${server.address}/${DATA_ID}?group=${GROUP}`, options.env ?? {}));
    const config = new RuntimeConfig({ baseline: DEFAULT_BASELINE, source, ...(options.dataDir ? { dataDir: options.dataDir } : {}), ...(options.keys ? { publicKeys: options.keys } : {}) });
    cleanups.push(() => config.close());
    return config;
  }

  it('applies what Nacos holds at start, then each newer publish within milliseconds; refuses stale, invalid and badly signed ones; ignores a delete', async () => {
    const server = await nacos();
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
    const stranger = crypto.generateKeyPairSync('ed25519').privateKey;
    const sign = (text: string): string => signDocument(text, privateKey);
    server.publish(DATA_ID, GROUP, sign(doc(1)));
    const config = follow(server, { keys: new PublicKeyRing([publicKey]) });
    config.start();
    await eventually(() => config.current.version === 1, 5_000, 'version 1 from Nacos');

    const latencies: number[] = [];
    for (let v = 2; v <= 21; v++) {
      await eventually(() => server.heldPolls === 1, 5_000, 'the client to hold a long poll');
      const t0 = performance.now();
      server.publish(DATA_ID, GROUP, sign(doc(v, { drainGraceMs: 1_000 + v })));
      await eventually(() => config.current.version === v, 5_000, `version ${v}`);
      latencies.push(performance.now() - t0);
    }
    latencies.sort((a, b) => a - b);
    console.log(`Nacos publish -> applied, 20 updates: p50 ${latencies[10]!.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`);
    expect(config.current.core.drainGraceMs).toBe(1_021);

    const refusals: [string, string][] = [
      [sign(doc(5)), 'stale'],
      [sign('version: 30\nkeepalive: { lbIdleWindowMS: 1 }\n'), 'invalid'],
      [doc(31), 'bad_signature'],
      [signDocument(doc(32), stranger), 'bad_signature'],
    ];
    for (const [text, result] of refusals) {
      const before = config.resultCounts[result as 'stale'];
      await eventually(() => server.heldPolls === 1, 5_000, 'the client to hold a long poll');
      server.publish(DATA_ID, GROUP, text);
      await eventually(() => config.resultCounts[result as 'stale'] === before + 1, 5_000, `a ${result} count`);
      expect(config.current.version).toBe(21);
    }
    await eventually(() => server.heldPolls === 1, 5_000, 'the client to hold a long poll');
    server.remove(DATA_ID, GROUP);
    await eventually(() => config.resultCounts.empty === 1, 5_000, 'the delete to be seen');
    expect(config.current.version).toBe(21);
    expect(config.status().lastRefusal).toMatchObject({ result: 'empty' });
    expect(config.resultCounts).toMatchObject({ applied: 21, stale: 1, invalid: 1, bad_signature: 2, empty: 1 });
  });

  it('sends the credentials from the environment, never from the URL', async () => {
    const server = await NacosTestServer.start({ auth: { username: 'ops', password: 's3cret' } });
    cleanups.push(() => server.close());
    server.publish(DATA_ID, GROUP, doc(3));
    const config = follow(server, { env: { ZONAL_NACOS_USERNAME: 'ops', ZONAL_NACOS_PASSWORD: 's3cret' } });
    config.start();
    await eventually(() => config.current.version === 3, 5_000, 'version 3 with credentials');
    expect(JSON.stringify(config.status())).not.toContain('s3cret');
  });

  it('Nacos down at start: the dispatcher starts within 1 s on its last-good snapshot, then converges when Nacos answers', async () => {
    for (const outage of ['refused', 'hung'] as const) {
      const server = await nacos();
      if (outage === 'refused') await server.stop();
      else server.blackhole = true;
      const dataDir = tempDir();
      writeFileSync(path.join(dataDir, 'runtime-config.last-good'), doc(5, { drainGraceMs: 1_555 }));
      const t0 = performance.now();
      const harness: Harness = await startHarness({ dataDir, config: `nacos://${server.address}/${DATA_ID}?group=${GROUP}` });
      const startMs = performance.now() - t0;
      cleanups.push(() => harness.server.stop());
      console.log(`Nacos ${outage} at start: dispatcher serving after ${startMs.toFixed(0)} ms on last-good version ${harness.server.runtimeConfig.current.version}`);
      expect(startMs).toBeLessThan(1_000);
      expect(harness.server.runtimeConfig.current.version).toBe(5);
      expect(harness.server.dispatcher.coreOptions.drainGraceMs).toBe(1_555);

      server.publish(DATA_ID, GROUP, doc(6, { drainGraceMs: 1_666 }));
      const back = performance.now();
      if (outage === 'refused') await server.restart();
      else {
        server.blackhole = false;
        // The hung request times out on the client (5 s) and is retried.
      }
      await eventually(() => harness.server.runtimeConfig.current.version === 6, 20_000, 'version 6 once Nacos answers');
      console.log(`Nacos ${outage}: version 6 applied ${(performance.now() - back).toFixed(0)} ms after Nacos came back`);
      expect(harness.server.dispatcher.coreOptions.drainGraceMs).toBe(1_666);
      await harness.server.stop();
    }
  }, 60_000);

  it('Nacos restarted mid-subscription: the change made while it was down arrives after it returns', async () => {
    const server = await nacos();
    server.publish(DATA_ID, GROUP, doc(1));
    const config = follow(server);
    config.start();
    await eventually(() => config.current.version === 1, 5_000, 'version 1');
    await eventually(() => server.heldPolls === 1, 5_000, 'a held long poll');
    await server.stop();
    server.publish(DATA_ID, GROUP, doc(2));
    const source = (config as unknown as { options: { source: NacosSource } }).options.source;
    // While it is down the client backs off instead of spinning.
    const requestsBefore = source.http.stats.requests;
    await eventually(() => source.http.stats.failures >= 3, 10_000, 'three failed attempts');
    const t0 = performance.now();
    await server.restart();
    await eventually(() => config.current.version === 2, 20_000, 'version 2 after the restart');
    console.log(
      `Nacos restarted: the change made while it was down applied ${(performance.now() - t0).toFixed(0)} ms after it came back; ${source.http.stats.requests - requestsBefore} requests during the outage`,
    );
    expect(source.http.stats.requests - requestsBefore).toBeLessThan(50);
  }, 30_000);

  it('close() leaves no timer, socket or long poll behind, whether Nacos is up or down', async () => {
    for (const state of ['up', 'down'] as const) {
      const server = await nacos();
      server.publish(DATA_ID, GROUP, doc(1));
      const before = liveHandles();
      const config = follow(server);
      config.start();
      await eventually(() => config.current.version === 1, 5_000, 'version 1');
      await eventually(() => server.heldPolls === 1, 5_000, 'a held long poll');
      if (state === 'down') {
        await server.stop();
        const source = (config as unknown as { options: { source: NacosSource } }).options.source;
        await eventually(() => source.http.stats.failures >= 2, 10_000, 'failures while down');
      }
      await config.close();
      await eventually(() => server.heldPolls === 0 && server.openConnections === 0, 5_000, 'the server to see no poll and no connection');
      await server.close();
      // Nothing more than before the client existed (sockets of earlier tests may still be closing then).
      const noMore = (): boolean => Object.entries(liveHandles()).every(([kind, n]) => n <= (before[kind] ?? 0));
      await eventually(noMore, 5_000, `no handles left (${state})`).catch(() => {
        throw new Error(`handles left after close() with Nacos ${state}: ${JSON.stringify(liveHandles())}, before: ${JSON.stringify(before)}`);
      });
    }
  }, 30_000);
});
