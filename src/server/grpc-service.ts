import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError, ZonalError } from '../errors';
import { decodeSubmit, encodeError, encodeTaskInfo } from '../protocol/codec';
import type {
  WireSubmitRequest,
  WireSubmitResponse,
  WireSubmitResult,
  WireTaskInfo,
  WireDispatcherMessage,
  WireWorkerMessage,
  Outgoing,
} from '../protocol/wire';
import { DEFAULT_QUEUE, NAME_PATTERN, type RawSubmit } from '../core/task-fields';
import type { AccessGuard, CallPeer, GuardedMethod } from '../security/access-guard';
import type { Principal } from '../security/access-policy';
import type { Dispatcher, SubmitOutcome } from './dispatcher';
import { WorkerStream } from './worker-stream';

const MAX_ID_LENGTH = 128;
/** Worker streams open at once on one dispatcher, counted from the moment they open (before Hello). */
export const MAX_WORKER_STREAMS = 10_000;
/** WatchTask streams open at once on one dispatcher. */
export const MAX_WATCHES = 10_000;
/** TaskInfo messages queued towards a watcher that stopped reading; past this its watch is ended. */
const MAX_QUEUED_WATCH_MESSAGES = 64;

function taskIdOf(value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new InvalidArgumentError('task_id', 'is required');
  if (value.length > MAX_ID_LENGTH) throw new InvalidArgumentError('task_id', `must be at most ${MAX_ID_LENGTH} characters`);
  return value;
}

function notFound(taskId: string): ZonalError {
  return new ZonalError('TASK_NOT_FOUND', `no task ${taskId}; finished tasks are kept only for the retention period`);
}

/** Runs a unary handler body and turns every outcome into exactly one callback. */
function unary<Req, Res>(
  dispatcher: Dispatcher,
  body: (request: Req, call: CallPeer) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    body(call.request, call).then(
      (response) => callback(null, response),
      (err: unknown) => {
        if (!(err instanceof ZonalError)) dispatcher.reportError(err, { where: 'unary call' });
        callback(dispatcher.toStatus(err), null);
      },
    );
  };
}

/** The gRPC handlers of zonal.v1.Dispatcher: validate, call the Dispatcher, encode. */
/** The service's handlers, and what its server does before it stops: end the open watches. */
export interface DispatcherHandlers {
  handlers: grpc.UntypedServiceImplementation;
  /**
   * Ends every open WatchTask stream with UNAVAILABLE (SHUTTING_DOWN), so a
   * watcher opens its watch again elsewhere (the SDK does) rather than
   * seeing it cancelled.
   */
  endWatches(): void;
}

function queueOf(raw: RawSubmit): string {
  return typeof raw.queue === 'string' && raw.queue !== '' ? raw.queue : DEFAULT_QUEUE;
}

/**
 * Submits `raws` for a caller the guard knows: tasks of queues it may not
 * produce to, or of full queues, get their refusal as their result (a
 * resubmit whose idempotency key a task holds is let through to get that
 * task, full queue or not); the rest are submitted. Throws BATCH_TOO_LARGE
 * or RATE_LIMITED (nothing submitted); only the tasks that would be
 * submitted spend the identity's rate.
 */
export async function guardedSubmit(dispatcher: Pick<Dispatcher, 'assertBatchSize' | 'submit'>, guard: AccessGuard, principal: Principal, given: RawSubmit[], method: GuardedMethod): Promise<SubmitOutcome[]> {
  dispatcher.assertBatchSize(given.length);
  const raws = given.map((raw) => guard.scopeIdempotencyKey(principal, raw));
  const refused: (ZonalError | undefined)[] = raws.map((raw) => guard.produceRefusal(principal, queueOf(raw), method));
  const settles: { queue: string; settle(accepted: number): void }[] = [];
  const accepted = new Map<string, number>();
  try {
    if (guard.capsQueues) {
      const perQueue = new Map<string, number[]>();
      // A queue name the submit will refuse (INVALID_ARGUMENT) takes no place among the depths.
      raws.forEach((raw, i) => refused[i] === undefined && NAME_PATTERN.test(queueOf(raw)) && perQueue.set(queueOf(raw), [...(perQueue.get(queueOf(raw)) ?? []), i]));
      for (const [queue, indices] of perQueue) {
        const admitted = await guard.admitToQueue(queue, indices.length, method);
        if ('settle' in admitted) {
          settles.push({ queue, settle: admitted.settle });
          continue;
        }
        const keyOf = (i: number): string => (typeof raws[i]!.idempotencyKey === 'string' ? raws[i]!.idempotencyKey! : '');
        const held = await guard.heldKeys(indices.map(keyOf).filter((key) => key !== ''));
        const full = indices.filter((i) => !held.has(keyOf(i)));
        if (full.length === 0) continue;
        const refusal = admitted.refuse(full.length);
        for (const i of full) refused[i] = refusal;
      }
    }
    const admitted = raws.filter((_, i) => refused[i] === undefined);
    guard.takeSubmitRate(principal, admitted.length, method);
    const outcomes = admitted.length > 0 ? await dispatcher.submit(admitted) : [];
    let next = 0;
    return raws.map((raw, i) => {
      const refusal = refused[i];
      if (refusal !== undefined) return { taskId: '', deduplicated: false, error: refusal.toInfo() };
      const outcome = outcomes[next++]!;
      if (outcome.error === null && !outcome.deduplicated) accepted.set(queueOf(raw), (accepted.get(queueOf(raw)) ?? 0) + 1);
      return outcome;
    });
  } finally {
    for (const { queue, settle } of settles) settle(accepted.get(queue) ?? 0);
  }
}

export function dispatcherHandlers(dispatcher: Dispatcher, helloTimeoutMs: number, guard?: AccessGuard): DispatcherHandlers {
  /** Open WatchTask calls: each ends itself with an error status. */
  const openWatches = new Set<(error: ReturnType<Dispatcher['toStatus']>) => void>();
  const submit = (raws: RawSubmit[], call: CallPeer, method: GuardedMethod): Promise<SubmitOutcome[]> =>
    guard === undefined ? dispatcher.submit(raws) : guardedSubmit(dispatcher, guard, guard.identify(call, method), raws, method);

  /** The task `taskId` if the caller may see it: NOT_FOUND when there is none, PERMISSION_DENIED when its queue is not the caller's. */
  const readableTask = async (taskId: string, call: CallPeer, method: GuardedMethod): Promise<NonNullable<Awaited<ReturnType<Dispatcher['getTask']>>>> => {
    const principal = guard?.identify(call, method);
    const task = await dispatcher.getTask(taskId);
    if (task === undefined) throw notFound(taskId);
    const refusal = principal !== undefined ? guard!.produceRefusal(principal, task.queue, method) : undefined;
    if (refusal !== undefined) throw refusal;
    return task;
  };

  const submitOne = async (req: WireSubmitRequest, call: CallPeer): Promise<WireSubmitResponse> => {
    const [outcome] = await submit([decodeSubmit(req)], call, 'Submit');
    if (outcome === undefined) throw new ZonalError('INTERNAL', 'submit produced no result');
    if (outcome.error !== null) throw new ZonalError(outcome.error.reason as ZonalError['reason'], outcome.error.message);
    return { taskId: outcome.taskId, deduplicated: outcome.deduplicated, servedBy: dispatcher.servedBy };
  };

  const submitBatch = async (req: { tasks?: WireSubmitRequest[] }, call: CallPeer): Promise<{ results: WireSubmitResult[]; servedBy: string }> => {
    const tasks = req.tasks ?? [];
    const outcomes = await submit(tasks.map(decodeSubmit), call, 'SubmitBatch');
    return { results: outcomes.map((o) => ({ taskId: o.taskId, deduplicated: o.deduplicated, error: encodeError(o.error) })), servedBy: dispatcher.servedBy };
  };

  const getTask = async (req: { taskId?: string }, call: CallPeer): Promise<WireTaskInfo> => encodeTaskInfo(await readableTask(taskIdOf(req.taskId), call, 'GetTask'));

  const cancelTask = async (req: { taskId?: string; reason?: string }, call: CallPeer): Promise<{ state: string; cancelled: boolean }> => {
    const taskId = taskIdOf(req.taskId);
    const reason = req.reason ?? '';
    if (reason.length > 1024) throw new InvalidArgumentError('reason', 'must be at most 1024 characters');
    // The queue never changes, so the check made on the read still holds when the cancel lands.
    if (guard !== undefined) await readableTask(taskId, call, 'CancelTask');
    const outcome = await dispatcher.cancel(taskId, reason);
    if (outcome === undefined) throw notFound(taskId);
    return outcome;
  };

  let workerStreams = 0;
  const watchTask: grpc.handleServerStreamingCall<{ taskId?: string }, WireTaskInfo> = (call) => {
    let taskId: string;
    let principal: Principal | undefined;
    try {
      taskId = taskIdOf(call.request.taskId);
      principal = guard?.identify(call, 'WatchTask');
      dispatcher.assertAccepting();
      if (openWatches.size >= MAX_WATCHES) throw new ZonalError('TOO_MANY_STREAMS', `this dispatcher has ${MAX_WATCHES} watches open, its most; wait for results with GetTask, or watch through another dispatcher`);
    } catch (err) {
      call.emit('error', dispatcher.toStatus(err));
      return;
    }
    let ended = false;
    let stop: (() => void) | undefined;
    const fail = (status: ReturnType<Dispatcher['toStatus']>): void => {
      if (ended) return;
      ended = true;
      openWatches.delete(fail);
      stop?.();
      call.emit('error', status);
    };
    openWatches.add(fail);
    const end = (): void => {
      if (ended) return;
      ended = true;
      openWatches.delete(fail);
      stop?.();
      call.end();
    };
    call.on('cancelled', () => {
      ended = true;
      openWatches.delete(fail);
      stop?.();
    });
    // The first record says the task's queue: a caller that may not use it is refused before anything is sent.
    let allowed = principal === undefined;
    const deliver = (record: Parameters<Parameters<Dispatcher['watch']>[1]>[0]): void => {
      if (ended) return;
      if (!allowed) {
        const refusal = guard!.produceRefusal(principal!, record.queue, 'WatchTask');
        if (refusal !== undefined) {
          fail(dispatcher.toStatus(refusal));
          return;
        }
        allowed = true;
      }
      if (call.writableLength > MAX_QUEUED_WATCH_MESSAGES) {
        fail(dispatcher.toStatus(new ZonalError('TOO_MANY_STREAMS', `more than ${MAX_QUEUED_WATCH_MESSAGES} updates queued: the watcher is not reading its stream; watch again (or GetTask)`, { code: 8 })));
        return;
      }
      call.write(encodeTaskInfo(record));
    };
    dispatcher
      .watch(taskId, deliver, end)
      .then((unsubscribe) => {
        if (unsubscribe === undefined) {
          fail(dispatcher.toStatus(notFound(taskId)));
          return;
        }
        stop = unsubscribe;
        if (ended) unsubscribe();
      })
      .catch((err: unknown) => fail(dispatcher.toStatus(err)));
  };

  const connect: grpc.handleBidiStreamingCall<WireWorkerMessage, Outgoing<WireDispatcherMessage>> = (call) => {
    if (dispatcher.lifecycle !== 'RUNNING') {
      call.emit('error', dispatcher.toStatus(new ZonalError('SHUTTING_DOWN', 'the dispatcher is stopping; reconnect to another one')));
      return;
    }
    if (workerStreams >= MAX_WORKER_STREAMS) {
      call.emit('error', dispatcher.toStatus(new ZonalError('TOO_MANY_STREAMS', `this dispatcher has ${MAX_WORKER_STREAMS} worker streams open, its most; connect to another dispatcher`)));
      return;
    }
    let principal: Principal | undefined;
    let release: () => void = () => undefined;
    if (guard !== undefined) {
      try {
        principal = guard.identify(call, 'Connect');
        release = guard.openStream(principal);
      } catch (err) {
        call.emit('error', dispatcher.toStatus(err));
        return;
      }
    }
    workerStreams += 1;
    const onEnded = (): void => {
      workerStreams -= 1;
      release();
    };
    new WorkerStream(dispatcher, call, helloTimeoutMs, principal !== undefined ? { checkHello: (hello) => guard!.checkWork(principal, hello.queues), onEnded } : { onEnded });
  };

  const handlers = {
    Submit: unary(dispatcher, submitOne),
    SubmitBatch: unary(dispatcher, submitBatch),
    GetTask: unary(dispatcher, getTask),
    CancelTask: unary(dispatcher, cancelTask),
    WatchTask: watchTask,
    Connect: connect,
  } as grpc.UntypedServiceImplementation;
  return {
    handlers,
    endWatches() {
      const status = dispatcher.toStatus(new ZonalError('SHUTTING_DOWN', 'the dispatcher is stopping; watch the task again through another one'));
      for (const fail of [...openWatches]) fail(status);
    },
  };
}
