import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer } from '../../src/app/start-server';
import { HOLDER_FILE } from '../../src/store/sqlite/data-dir-lock';
import { DataDirInUseError } from '../../src/store/store-errors';
import { startHarness, type Harness } from '../support/server-harness';

const harnesses: Harness[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.cleanup();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function harness(input: Parameters<typeof startHarness>[0] = {}): Promise<Harness> {
  const h = await startHarness(input);
  harnesses.push(h);
  return h;
}

function freshDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'zonal-lock-it-'));
  dirs.push(dir);
  return dir;
}

/** startServer's rejection, or a failure if it started. */
async function refused(input: Parameters<typeof startServer>[0]): Promise<unknown> {
  return startServer({ grpcAddress: '127.0.0.1:0', adminAddress: '', ...input }).then(
    async (server) => {
      await server.stop();
      throw new Error('the second dispatcher started');
    },
    (err: unknown) => err,
  );
}

describe('one dispatcher per data dir', () => {
  it('a second dispatcher on a data dir in use is refused, naming the holder; it starts once the first stopped', async () => {
    const first = await harness();
    const err = await refused({ dataDir: first.dataDir });
    expect(err).toBeInstanceOf(DataDirInUseError);
    expect((err as DataDirInUseError).holder).toMatchObject({ pid: process.pid, host: hostname() });
    // The refusal touched nothing: the first one still serves and still holds the dir.
    expect(first.server.dispatcher.lifecycle).toBe('RUNNING');
    expect(existsSync(path.join(first.dataDir, HOLDER_FILE))).toBe(true);

    const dataDir = first.dataDir;
    await first.server.stop();
    expect(existsSync(path.join(dataDir, HOLDER_FILE))).toBe(false);
    const second = await harness({ dataDir });
    expect(second.server.dispatcher.lifecycle).toBe('RUNNING');
  });

  it('a start that fails after taking the lock releases it', async () => {
    const other = await harness();
    const dataDir = freshDir();
    // Its gRPC port is taken: the start fails after the lock and the store were taken.
    const err = await refused({ dataDir, grpcAddress: other.target });
    expect(String(err)).toContain('EADDRINUSE');
    const retry = await harness({ dataDir });
    expect(retry.server.dispatcher.lifecycle).toBe('RUNNING');
  });
});
