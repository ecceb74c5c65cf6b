import { afterEach, describe, expect, it } from 'vitest';
import { NacosSource } from '../../src/config/nacos-source';
import { parseNacosUrl } from '../../src/config/nacos-url';
import { RuntimeConfig } from '../../src/config/runtime-config';
import { DEFAULT_BASELINE } from '../../src/config/runtime-schema';
import { NacosTestServer } from '../support/nacos-test-server';

/**
 * A Nacos (or a proxy in front of it) that answers the long poll at once,
 * over and over, must not drive the dispatcher into a request storm: the
 * poll backs off like a failure does. Through the real npm `nacos`
 * DataClient against the protocol-level test server.
 */
const DATA_ID = 'zonal-runtime';
const POLLS = 8;

describe('a Nacos whose long poll returns at once', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const mode of ['unchanged', 'changed'] as const) {
    it(`answered at once as ${mode === 'changed' ? "changed (an MD5 that never matches)" : 'unchanged (a proxy cutting held polls)'}: the request rate stays bounded`, async () => {
      const server = await NacosTestServer.start();
      cleanups.push(() => server.close());
      server.publish(DATA_ID, 'DEFAULT_GROUP', 'version: 3\n');
      server.pollsAnswerAtOnce = mode;
      const source = new NacosSource(parseNacosUrl(`nacos://${server.address}/${DATA_ID}`, {}));
      const config = new RuntimeConfig({ baseline: DEFAULT_BASELINE, source });
      cleanups.push(() => config.close());

      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      const polled = new Promise<void>((resolve) =>
        server.on('request', (kind) => {
          if (kind === 'listen' && server.requests.listen >= POLLS) resolve();
        }),
      );
      config.start();
      await polled;
      const elapsedMs = performance.now() - started;
      const cpu = process.cpuUsage(cpuBefore);
      const requests = server.requests.listen + server.requests.get;
      const perSecond = (requests * 1_000) / elapsedMs;
      console.log(
        `[figures] long poll answered at once (${mode}): ${requests} requests (${server.requests.listen} polls, ${server.requests.get} gets) in ${elapsedMs.toFixed(0)} ms = ${perSecond.toFixed(1)}/s, ` +
          `CPU ${(((cpu.user + cpu.system) / 1_000 / elapsedMs) * 100).toFixed(1)} % of a core`,
      );
      expect(config.current.version).toBe(3);
      // Polls after a quick answer wait 100, 200, 400 ... up to 2,000 ms (jitter may halve each):
      // the 8th poll cannot come before ~3.5 s. The bug made 430-1,365 requests/s.
      expect(elapsedMs).toBeGreaterThan(3_000);
      expect(perSecond).toBeLessThan(10);
    }, 30_000);
  }
});
