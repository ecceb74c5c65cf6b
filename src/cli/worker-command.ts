import { startTracingFromEnv } from '../telemetry/otel-sdk';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type TaskHandler } from '../client/worker';
import { setLogLevel, type LogLevel } from '../log';
import { CLIENT_SECURITY_FLAGS, clientSecurity } from './client-security-flags';
import { num, str, UsageError, type FlagSpec, type FlagValues } from './flags';

export const WORKER_SUMMARY = 'Runs a worker: the built-in demo handler (sleeps, may fail, echoes the payload) or a handler module.';

export const WORKER_FLAGS: FlagSpec[] = [
  { name: 'target', env: 'ZONAL_TARGET', type: 'string', default: '127.0.0.1:50051', description: 'Dispatcher: xds:///zonal (needs GRPC_XDS_BOOTSTRAP), dns:///host:port or host:port.' },
  { name: 'slots', env: 'ZONAL_WORKER_SLOTS', type: 'number', default: 4, description: 'Most tasks run at once.' },
  { name: 'queues', env: 'ZONAL_WORKER_QUEUES', type: 'string', default: 'default', description: 'Comma-separated queues to serve.' },
  { name: 'zone', env: 'ZONAL_ZONE', type: 'string', default: '', description: "This worker's zone." },
  { name: 'worker-id', env: 'ZONAL_WORKER_ID', type: 'string', description: 'Stable worker id (default: host-pid-random).' },
  { name: 'handler', env: 'ZONAL_WORKER_HANDLER', type: 'string', description: 'Module exporting `handler` (or default): (task, ctx) => result. Overrides the demo handler.' },
  { name: 'sleep-ms', env: 'ZONAL_DEMO_SLEEP_MS', type: 'number', default: 0, description: 'Demo handler: how long each task takes.' },
  { name: 'fail-rate', env: 'ZONAL_DEMO_FAIL_RATE', type: 'number', default: 0, description: 'Demo handler: share of attempts that fail, 0..1.' },
  { name: 'log-level', env: 'ZONAL_LOG_LEVEL', type: 'string', default: 'info', description: 'debug, info, warn or error.' },
  ...CLIENT_SECURITY_FLAGS,
];

export function demoHandler(sleepMs: number, failRate: number): TaskHandler {
  return async (task, ctx) => {
    if (sleepMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, sleepMs);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error('aborted'));
        }, { once: true });
      });
    }
    if (failRate > 0 && Math.random() < failRate) throw new Error(`demo failure (fail-rate ${failRate})`);
    return task.payload;
  };
}

/**
 * A real dynamic import(): TypeScript compiles `import()` to `require()` for
 * CommonJS output, which cannot load an ES module handler.
 */
const importModule = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

async function loadHandler(modulePath: string): Promise<TaskHandler> {
  const resolved = path.resolve(modulePath);
  const mod = (await importModule(pathToFileURL(resolved).href)) as { handler?: unknown; default?: unknown };
  const fallback = typeof mod.default === 'function' ? mod.default : (mod.default as { handler?: unknown } | undefined)?.handler;
  const candidate = mod.handler ?? fallback;
  if (typeof candidate !== 'function') throw new UsageError(`${resolved} must export a function named handler (or a default export)`);
  return candidate as TaskHandler;
}

export async function workerCommand(values: FlagValues): Promise<void> {
  setLogLevel(str(values, 'log-level') as LogLevel);
  const failRate = num(values, 'fail-rate') ?? 0;
  if (failRate < 0 || failRate > 1) throw new UsageError('--fail-rate must be between 0 and 1');
  const handlerPath = str(values, 'handler');
  const handler = handlerPath !== '' ? await loadHandler(handlerPath) : demoHandler(num(values, 'sleep-ms') ?? 0, failRate);
  const workerId = str(values, 'worker-id');
  // With OTEL_* set, the worker's zonal.execute spans are exported (otel-sdk.ts).
  const tracing = startTracingFromEnv('zonal-worker');
  const { security, close: closeSecurity } = clientSecurity(values);
  const worker = new Worker({
    target: str(values, 'target'),
    ...security,
    handler,
    slots: num(values, 'slots') ?? 4,
    queues: str(values, 'queues').split(',').map((q) => q.trim()).filter(Boolean),
    zone: str(values, 'zone'),
    ...(workerId !== '' ? { workerId } : {}),
    onConnected: (info) => process.stdout.write(JSON.stringify({ event: 'worker-connected', ...info, atMs: Date.now() }) + '\n'),
  });
  await worker.start({ deadlineMs: 30_000 });
  process.stdout.write(JSON.stringify({ event: 'worker-running', workerId: worker.workerId, sessionId: worker.sessionId, pid: process.pid }) + '\n');
  const stop = (): void => {
    worker
      .close()
      .then(() => closeSecurity())
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

