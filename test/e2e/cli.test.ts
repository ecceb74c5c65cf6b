import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, killAll, spawnZonal } from '../support/processes';

const run = promisify(execFile);

describe('zonal CLI', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-cli-'));

  afterAll(async () => {
    await killAll();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('documents every flag with its environment variable', async () => {
    const top = await run(process.execPath, [CLI, '--help']);
    expect(top.stdout).toMatch(/serve/);
    expect(top.stdout).toMatch(/worker/);
    expect(top.stdout).toMatch(/submit/);
    for (const [command, env] of [
      ['serve', 'ZONAL_GRPC_ADDRESS'],
      ['worker', 'ZONAL_WORKER_SLOTS'],
      ['submit', 'ZONAL_SUBMIT_COUNT'],
    ] as const) {
      const help = await run(process.execPath, [CLI, command, '--help']);
      expect(help.stdout).toContain(env);
    }
  });

  it('rejects an unknown flag with exit code 2 and says which', async () => {
    await expect(run(process.execPath, [CLI, 'serve', '--no-such-flag'])).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('no-such-flag') });
  });

  it('serves, runs the demo worker and prints submitted results as JSON; SIGTERM exits 0', async () => {
    // Configured through environment variables only, to prove they work.
    const server = spawnZonal(['serve'], { ZONAL_GRPC_ADDRESS: '127.0.0.1:0', ZONAL_ADMIN_ADDRESS: '127.0.0.1:0', ZONAL_DATA_DIR: dataDir });
    const listening = await server.waitForEvent('listening');
    const target = String(listening['grpcAddress']);
    const health = await fetch(`http://${String(listening['adminAddress'])}/readyz`);
    expect(health.status).toBe(200);

    const worker = spawnZonal(['worker', '--slots', '2'], { ZONAL_TARGET: target });
    await worker.waitForEvent('worker-running');
    const submitted = await run(process.execPath, [CLI, 'submit', '--target', target, '--payload', 'job-{i}', '--count', '3', '--wait']);
    const lines = submitted.stdout.trim().split('\n').map((l) => JSON.parse(l) as { state: string; result: string });
    expect(lines.map((l) => l.state)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    expect(lines.map((l) => l.result).sort()).toEqual(['job-0', 'job-1', 'job-2']);

    expect((await worker.kill('SIGTERM')).code).toBe(0);
    expect((await server.kill('SIGTERM')).code).toBe(0);
  });
});
