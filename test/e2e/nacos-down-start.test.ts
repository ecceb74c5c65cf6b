import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { NacosTestServer } from '../support/nacos-test-server';
import { killAll, spawnZonal } from '../support/processes';
import { eventually } from '../support/server-harness';

/**
 * A real `zonal serve` process whose Nacos is down at start: it serves on
 * its last-good snapshot without waiting for Nacos, and converges once
 * Nacos answers. The start is compared with the same process started with
 * no config source at all, so the figure is what Nacos costs, not what
 * Node costs to start on a loaded machine.
 */
describe('zonal serve with Nacos down at start', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await killAll();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function timeToListening(args: string[]): Promise<{ ms: number; admin: string; proc: ReturnType<typeof spawnZonal> }> {
    const t0 = performance.now();
    const proc = spawnZonal(['serve', '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', ...args]);
    const listening = await proc.waitForEvent('listening');
    return { ms: performance.now() - t0, admin: String(listening['adminAddress']), proc };
  }

  it('serves within 1 s of a start without Nacos, on the last-good version, and converges when Nacos comes up', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-nacos-down-'));
    dirs.push(dataDir);
    writeFileSync(path.join(dataDir, 'runtime-config.last-good'), stringify({ version: 7, drainGraceMs: 1_777 }));
    const plainDir = mkdtempSync(path.join(tmpdir(), 'zonal-plain-'));
    dirs.push(plainDir);

    const plain = await timeToListening(['--data-dir', plainDir]);
    await plain.proc.kill();
    // A Nacos that is not there: start one to learn a free port, then stop it (the store survives for later).
    const nacos = await NacosTestServer.start();
    await nacos.stop();
    const down = await timeToListening(['--data-dir', dataDir, '--config', `nacos://${nacos.address}/zonal-runtime?group=ZONAL`]);
    const config = (await (await fetch(`http://${down.admin}/config`)).json()) as { version: number; appliedFrom: string; settings: { core: { drainGraceMs: number } } };
    console.log(`zonal serve to "listening": ${plain.ms.toFixed(0)} ms without a config source, ${down.ms.toFixed(0)} ms with Nacos down (last-good version ${config.version})`);
    expect(config).toMatchObject({ version: 7, appliedFrom: 'last-good snapshot' });
    expect(config.settings.core.drainGraceMs).toBe(1_777);
    expect(down.ms - plain.ms).toBeLessThan(1_000);

    nacos.publish('zonal-runtime', 'ZONAL', stringify({ version: 8, drainGraceMs: 1_888 }));
    await nacos.restart();
    try {
      await eventually(
        async () => ((await (await fetch(`http://${down.admin}/config`)).json()) as { version: number }).version === 8,
        20_000,
        'version 8 from Nacos',
      );
      expect(await down.proc.kill()).toMatchObject({ code: 0 });
    } finally {
      await nacos.close();
    }
  }, 60_000);
});
