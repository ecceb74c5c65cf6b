/**
 * A soak worker: the SDK's Worker (the build named by `sdk`) on
 * `xds:///zonal` with its zone's bootstrap (GRPC_XDS_BOOTSTRAP), on the soak
 * queue. Its handler does what the task's kind says (task-kinds.ts) and
 * returns `<workerId>#<attempt>`, so the verdict can trace a stored result
 * to the execution that made it. It reports:
 *
 *   {"event":"exec","taskId","attempt","workerId","kind","key","dispatcherId","atMs"}   the handler started (before any result can exist)
 *   {"event":"settled","taskId","attempt","status","result","reason","workerId","dispatcherId","atMs"}   the dispatcher answered a final update (ACCEPTED, DUPLICATE, REJECTED)
 *   {"event":"connected","dispatcherId","dispatcherZone"}              each welcome
 *   {"event":"done","stats"}                                           after `stop` or SIGTERM (drained)
 *
 * stdout is written synchronously (a pipe on Linux): an execution is
 * reported before its handler returns, even if the soak SIGKILLs the worker
 * right after.
 */
import * as readline from 'node:readline';
import type { NonRetryableError as NonRetryableErrorType, TaskContext, Worker as WorkerType, WorkerTask } from '../../src/client/worker';
import { emit, settings } from '../deployed/messages';
import { decodePayload, resultOf, SOAK_QUEUE, TIMEOUT_KIND_FIRST_SLEEP_MS } from './task-kinds';
import { sleep } from './sleep';

interface Settings {
  sdk: string;
  workerId: string;
  zone: string;
  slots: number;
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const sdk = require(s.sdk) as { Worker: typeof WorkerType; NonRetryableError: typeof NonRetryableErrorType };
  /** The dispatcher of the current stream (the one that sent the assignments the handler runs). */
  let dispatcherId = '';
  const handler = async (task: WorkerTask, ctx: TaskContext): Promise<string> => {
    const p = decodePayload(task.payload);
    emit('exec', { taskId: task.taskId, attempt: task.attempt, workerId: s.workerId, kind: p.kind, key: p.key, dispatcherId, atMs: Date.now() });
    switch (p.kind) {
      case 'flaky':
        if (task.attempt === 1) throw new Error('flaky: the first attempt fails on purpose');
        break;
      case 'timeout':
        if (task.attempt === 1) {
          await sleep(TIMEOUT_KIND_FIRST_SLEEP_MS, ctx.signal);
          return resultOf(s.workerId, task.attempt);
        }
        break;
      case 'fail':
        await sleep(p.sleepMs, ctx.signal);
        throw new sdk.NonRetryableError('fail: fails on purpose, not retried');
      default:
        break;
    }
    await sleep(p.sleepMs, ctx.signal);
    return resultOf(s.workerId, task.attempt);
  };
  const worker = new sdk.Worker({
    target: 'xds:///zonal',
    zone: s.zone,
    workerId: s.workerId,
    slots: s.slots,
    queues: [SOAK_QUEUE],
    handler,
    onSettled: (info) => emit('settled', { taskId: info.taskId, attempt: info.attempt, status: info.status, result: info.result, reason: info.reason, workerId: s.workerId, dispatcherId, atMs: Date.now() }),
    onConnected: (info) => {
      dispatcherId = info.dispatcherId;
      emit('connected', { dispatcherId: info.dispatcherId, dispatcherZone: info.dispatcherZone });
    },
  });
  await worker.start({ deadlineMs: 60_000 });
  emit('ready', { pid: process.pid });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await worker.close({ graceMs: 3_000 }).catch(() => undefined);
    emit('done', { stats: worker.stats });
    process.exit(0);
  };
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'stop') void stop();
  });
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
