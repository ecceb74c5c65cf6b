/**
 * Child process of `npm run bench:idle`: one Zonal dispatcher, alone in its
 * process so its RSS and CPU are measured without the clients. Default
 * options except a loopback port, a temp-dir SQLite, no admin HTTP, no xDS,
 * and (for the faster configuration) the heartbeat budget.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startServer, type RunningServer } from '../src/app/start-server';
import { serveIpc, sampleProcess, type ProcessSample } from './idle-ipc';
import { profilingHandlers } from './idle-profile';

export interface DispatcherStartArgs {
  /** undefined keeps the default (2000/s). */
  heartbeatBudgetPerSec?: number;
}

export interface DispatcherStarted {
  address: string;
  heartbeatBudgetPerSec: number;
}

export interface DispatcherSample extends ProcessSample {
  heartbeatsSent: number;
  sessions: number;
  sessionsClosed: number;
  errorsReported: number;
}

let server: RunningServer | undefined;
let dataDir = '';

// Also when the parent disconnects without asking for stop (Ctrl-C, watchdog, failure).
process.on('exit', () => {
  if (dataDir !== '') rmSync(dataDir, { recursive: true, force: true });
});

serveIpc({
  ...profilingHandlers(),
  start: async (args: DispatcherStartArgs): Promise<DispatcherStarted> => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-idle-bench-'));
    const keepalive = args.heartbeatBudgetPerSec !== undefined ? { heartbeatBudgetPerSec: args.heartbeatBudgetPerSec } : undefined;
    server = await startServer({
      grpcAddress: '127.0.0.1:0',
      adminAddress: '',
      xdsAddress: '',
      dataDir,
      shutdownGraceMs: 1_000,
      ...(keepalive !== undefined ? { core: { keepalive } } : {}),
    });
    return { address: server.grpcAddress, heartbeatBudgetPerSec: server.options.core.keepalive.heartbeatBudgetPerSec };
  },
  sample: (args: { gc: boolean }): DispatcherSample => {
    const stats = server?.dispatcher.stats();
    const closed = Object.values(stats?.sessionsClosedByCause ?? {}).reduce((a, b) => a + b, 0);
    return {
      ...sampleProcess(args.gc),
      heartbeatsSent: stats?.heartbeatsSent ?? 0,
      sessions: stats?.sessions ?? 0,
      sessionsClosed: closed,
      errorsReported: server?.dispatcher.errorsReported ?? 0,
    };
  },
  stop: async (): Promise<void> => {
    await server?.stop();
    server = undefined;
    if (dataDir !== '') rmSync(dataDir, { recursive: true, force: true });
    dataDir = '';
  },
});
