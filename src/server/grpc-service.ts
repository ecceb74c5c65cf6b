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
import type { Dispatcher } from './dispatcher';
import { WorkerStream } from './worker-stream';

const MAX_ID_LENGTH = 128;

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
  body: (request: Req) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    body(call.request).then(
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

export function dispatcherHandlers(dispatcher: Dispatcher, helloTimeoutMs: number): DispatcherHandlers {
  /** Open WatchTask calls: each ends itself with an error status. */
  const openWatches = new Set<(error: ReturnType<Dispatcher['toStatus']>) => void>();
  const submitOne = async (req: WireSubmitRequest): Promise<WireSubmitResponse> => {
    const [outcome] = await dispatcher.submit([decodeSubmit(req)]);
    if (outcome === undefined) throw new ZonalError('INTERNAL', 'submit produced no result');
    if (outcome.error !== null) throw new ZonalError(outcome.error.reason as ZonalError['reason'], outcome.error.message);
    return { taskId: outcome.taskId, deduplicated: outcome.deduplicated, servedBy: dispatcher.servedBy };
  };

  const submitBatch = async (req: { tasks?: WireSubmitRequest[] }): Promise<{ results: WireSubmitResult[]; servedBy: string }> => {
    const tasks = req.tasks ?? [];
    const outcomes = await dispatcher.submit(tasks.map(decodeSubmit));
    return { results: outcomes.map((o) => ({ taskId: o.taskId, deduplicated: o.deduplicated, error: encodeError(o.error) })), servedBy: dispatcher.servedBy };
  };

  const getTask = async (req: { taskId?: string }): Promise<WireTaskInfo> => {
    const taskId = taskIdOf(req.taskId);
    const task = await dispatcher.getTask(taskId);
    if (task === undefined) throw notFound(taskId);
    return encodeTaskInfo(task);
  };

  const cancelTask = async (req: { taskId?: string; reason?: string }): Promise<{ state: string; cancelled: boolean }> => {
    const taskId = taskIdOf(req.taskId);
    const reason = req.reason ?? '';
    if (reason.length > 1024) throw new InvalidArgumentError('reason', 'must be at most 1024 characters');
    const outcome = await dispatcher.cancel(taskId, reason);
    if (outcome === undefined) throw notFound(taskId);
    return outcome;
  };

  const watchTask: grpc.handleServerStreamingCall<{ taskId?: string }, WireTaskInfo> = (call) => {
    let taskId: string;
    try {
      taskId = taskIdOf(call.request.taskId);
      dispatcher.assertAccepting();
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
    dispatcher
      .watch(taskId, (record) => !ended && call.write(encodeTaskInfo(record)), end)
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
    new WorkerStream(dispatcher, call, helloTimeoutMs);
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
