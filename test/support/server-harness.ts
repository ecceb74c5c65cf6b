import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startServer, type RunningServer } from '../../src/app/start-server';
import type { ServerOptionsInput } from '../../src/app/server-options';

export interface Harness {
  server: RunningServer;
  target: string;
  dataDir: string;
  /** Stops the server (if still running) and removes its data directory. */
  cleanup(): Promise<void>;
}

/** A real dispatcher on 127.0.0.1 port 0 with SQLite in a fresh temp directory. */
/**
 * Tests run the seed's fixed heartbeat timing (15 s / 45 s) unless they set
 * `core.keepalive`, so raw peers that never answer heartbeats are not
 * declared stalled in the middle of a test.
 */
export const TEST_KEEPALIVE = { minIntervalMs: 15_000, maxIntervalMs: 15_000, baseIdleMs: 45_000 };

export async function startHarness(input: ServerOptionsInput = {}): Promise<Harness> {
  const dataDir = input.dataDir ?? mkdtempSync(path.join(tmpdir(), 'zonal-test-'));
  const server = await startServer({
    grpcAddress: '127.0.0.1:0',
    adminAddress: '',
    sqliteSynchronous: 'NORMAL',
    shutdownGraceMs: 200,
    ...input,
    core: { ...input.core, keepalive: { ...TEST_KEEPALIVE, ...input.core?.keepalive } },
    dataDir,
  });
  let stopped = false;
  return {
    server,
    target: server.grpcAddress,
    dataDir,
    async cleanup() {
      if (!stopped) {
        stopped = true;
        await server.stop();
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves when `condition` holds, polling on the event loop; rejects after `timeoutMs`. */
export async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (await condition()) return;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
