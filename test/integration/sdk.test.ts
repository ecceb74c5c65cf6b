import { afterEach, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { NonRetryableError, Worker, type TaskHandler } from '../../src/client/worker';
import { TaskFailedError } from '../../src/errors';
import { rawClient, RawStream } from '../support/raw-client';
import { eventually, startHarness, type Harness } from '../support/server-harness';
import type { ServerOptionsInput } from '../../src/app/server-options';

/** The SDK as a user drives it, against a real dispatcher on 127.0.0.1 port 0. */
describe('SDK: ProducerClient and Worker', () => {
  let harness: Harness | undefined;
  const producers: ProducerClient[] = [];
  const workers: Worker[] = [];
  const closers: (() => void)[] = [];

  afterEach(async () => {
    for (const close of closers.splice(0)) close();
    for (const p of producers.splice(0)) p.close();
    await Promise.all(workers.splice(0).map((w) => w.close({ graceMs: 200 })));
    await harness?.cleanup();
    harness = undefined;
  });

  async function setup(handler: TaskHandler, options: ServerOptionsInput = {}, slots = 2): Promise<{ producer: ProducerClient; worker: Worker }> {
    harness = await startHarness(options);
    const producer = new ProducerClient({ target: harness.target });
    producers.push(producer);
    const worker = new Worker({ target: harness.target, handler, slots, workerId: 'sdk-worker' });
    workers.push(worker);
    await worker.start();
    return { producer, worker };
  }

  it('awaits a result; watch streams every state until the terminal one', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { producer } = await setup(async (task, ctx) => {
      ctx.progress(0.5);
      await gate;
      return `echo:${task.payload.toString()}`;
    });
    const { taskId, deduplicated } = await producer.submit({ payload: 'hi' });
    expect(deduplicated).toBe(false);
    const states: string[] = [];
    const watching = (async () => {
      for await (const info of producer.watch(taskId)) states.push(`${info.state}:${info.progressPermille}`);
    })();
    await eventually(async () => (await producer.get(taskId)).progressPermille === 500, 5_000, 'progress 50%');
    release();
    expect((await producer.result(taskId)).toString()).toBe('echo:hi');
    await watching;
    expect(states.at(-1)).toBe('COMPLETED:0');
    expect(states).toContain('RUNNING:500');
    const info = await producer.get(taskId);
    expect(info).toMatchObject({ state: 'COMPLETED', attempt: 1, workerId: 'sdk-worker' });
  });

  it('retries a thrown error with backoff and fails a NonRetryableError at once', async () => {
    const attempts = new Map<string, number>();
    const { producer } = await setup(
      (task) => {
        attempts.set(task.taskId, task.attempt);
        const kind = task.payload.toString();
        if (kind === 'flaky' && task.attempt < 3) throw new Error('transient');
        if (kind === 'fatal') throw new NonRetryableError('bad input');
        return 'ok';
      },
      { core: { backoff: { initialMs: 10, multiplier: 2, maxMs: 50, jitter: 0 } } },
    );
    const flaky = await producer.submit({ payload: 'flaky', maxAttempts: 3 });
    const fatal = await producer.submit({ payload: 'fatal', maxAttempts: 5 });
    expect((await producer.result(flaky.taskId)).toString()).toBe('ok');
    expect(attempts.get(flaky.taskId)).toBe(3);
    const failure = await producer.result(fatal.taskId).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(TaskFailedError);
    expect((failure as TaskFailedError).state).toBe('FAILED');
    expect((failure as TaskFailedError).info).toMatchObject({ reason: 'HANDLER_FAILED', message: 'bad input', retryable: false });
    expect(attempts.get(fatal.taskId)).toBe(1);
  });

  it('cancel fires the handler AbortSignal and the task ends CANCELLED', async () => {
    let aborted: unknown;
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => (started = resolve));
    const { producer, worker } = await setup(
      (_task, ctx) =>
        new Promise((_resolve, reject) => {
          started();
          ctx.signal.addEventListener('abort', () => {
            aborted = ctx.signal.reason;
            reject(new Error('stopped'));
          });
        }),
      {},
      1,
    );
    const { taskId } = await producer.submit({ payload: 'long' });
    await running;
    expect(await producer.cancel(taskId, 'user asked')).toEqual({ state: 'CANCELLED', cancelled: true });
    await eventually(() => aborted !== undefined && worker.runningTasks === 0, 5_000, 'the handler to see the abort');
    const failure = await producer.result(taskId).catch((e: unknown) => e);
    expect(failure).toMatchObject({ state: 'CANCELLED', info: { reason: 'CANCELLED', message: 'cancelled: user asked' } });
    // Cancelling again changes nothing.
    expect(await producer.cancel(taskId)).toEqual({ state: 'CANCELLED', cancelled: false });
  });

  it('deduplicates a resubmitted idempotency key, also after the task finished', async () => {
    const { producer } = await setup((task) => task.payload);
    const first = await producer.submit({ payload: 'x', idempotencyKey: 'order-42' });
    const again = await producer.submit({ payload: 'x', idempotencyKey: 'order-42' });
    expect(again).toEqual({ taskId: first.taskId, deduplicated: true, servedBy: first.servedBy });
    await producer.result(first.taskId);
    expect(await producer.submit({ payload: 'x', idempotencyKey: 'order-42' })).toEqual({ taskId: first.taskId, deduplicated: true, servedBy: first.servedBy });
  });

  it('close() drains: the in-flight task finishes and is not re-run', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let runs = 0;
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => (started = resolve));
    const { producer, worker } = await setup(async () => {
      runs += 1;
      started();
      await gate;
      return 'drained';
    });
    const { taskId } = await producer.submit({ payload: 'p' });
    await running;
    const closing = worker.close({ graceMs: 5_000 });
    expect(worker.lifecycle).toBe('DRAINING');
    // While draining, new tasks are not given to this worker.
    const later = await producer.submit({ payload: 'later' });
    release();
    await closing;
    expect(worker.lifecycle).toBe('STOPPED');
    expect((await producer.result(taskId)).toString()).toBe('drained');
    expect(runs).toBe(1);
    expect((await producer.get(later.taskId)).state).toBe('PENDING');
  });

  it('delays a task until not_before and runs higher priorities first', async () => {
    const order: string[] = [];
    harness = await startHarness();
    const producer = new ProducerClient({ target: harness.target });
    producers.push(producer);
    // The delayed task has the highest priority: only its not_before keeps it last.
    const notBefore = Date.now() + 1_500;
    const delayed = await producer.submit({ payload: 'delayed', notBefore, priority: 10 });
    const low = await producer.submit({ payload: 'low', priority: -5 });
    const high = await producer.submit({ payload: 'high', priority: 5 });
    const worker = new Worker({
      target: harness.target,
      slots: 1,
      handler: (task) => {
        order.push(task.payload.toString());
        return '';
      },
    });
    workers.push(worker);
    await worker.start();
    await Promise.all([producer.result(low.taskId), producer.result(high.taskId), producer.result(delayed.taskId)]);
    expect(order).toEqual(['high', 'low', 'delayed']);
    expect((await producer.get(delayed.taskId)).updatedMs).toBeGreaterThanOrEqual(notBefore);
  });

  it('re-queues the tasks of a stream that goes silent for the idle window', async () => {
    harness = await startHarness({ core: { keepalive: { minIntervalMs: 50, maxIntervalMs: 100, baseIdleMs: 300 } } });
    const producer = new ProducerClient({ target: harness.target });
    producers.push(producer);
    const client = rawClient(harness.target);
    const silent = new RawStream(client);
    closers.push(() => {
      silent.close();
      client.close();
    });
    silent.send({ hello: { workerId: 'silent', slots: 1 } });
    await silent.next('welcome');
    const { taskId } = await producer.submit({ payload: 'p' });
    await silent.next('assignments');
    // It sends nothing more: the dispatcher ends the stream and re-queues the task.
    await silent.closed(5_000);
    expect(silent.error?.code).toBe(14);
    expect(silent.error?.details).toContain('SESSION_IDLE');
    const worker = new Worker({ target: harness.target, handler: (task) => `attempt ${task.attempt}` });
    workers.push(worker);
    await worker.start();
    expect((await producer.result(taskId)).toString()).toBe('attempt 2');
  });

  it('onSettled: a final update that counts is ACCEPTED; one from an attempt taken away is not', async () => {
    harness = await startHarness();
    const producer = new ProducerClient({ target: harness.target });
    producers.push(producer);
    const settled: { taskId: string; attempt: number; status: string; result: string }[] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const worker = new Worker({
      target: harness.target,
      slots: 2,
      handler: async (task) => {
        if (task.payload.toString() === 'slow') await gate;
        return 'done';
      },
      onSettled: (info) => settled.push(info),
    });
    workers.push(worker);
    await worker.start();
    const quick = await producer.submit({ payload: 'quick' });
    await producer.result(quick.taskId);
    await eventually(() => settled.some((s) => s.taskId === quick.taskId), 5_000, 'the quick task to settle');
    expect(settled.filter((s) => s.taskId === quick.taskId)).toEqual([{ taskId: quick.taskId, attempt: 1, status: 'COMPLETED', result: 'ACCEPTED', reason: '' }]);
    // The slow attempt times out (its only attempt); its late answer must not count.
    const slow = await producer.submit({ payload: 'slow', attemptTimeoutMs: 200, maxAttempts: 1 });
    const failure = await producer.result(slow.taskId).catch((e: unknown) => e);
    expect(failure).toMatchObject({ state: 'FAILED', info: { reason: 'ATTEMPT_TIMEOUT' } });
    release();
    await eventually(() => settled.some((s) => s.taskId === slow.taskId), 5_000, 'the slow task to settle');
    const late = settled.filter((s) => s.taskId === slow.taskId);
    expect(late).toHaveLength(1);
    expect(late[0]!.result).not.toBe('ACCEPTED');
    expect((await producer.get(slow.taskId)).state).toBe('FAILED');
  });

  it('the worker reconnects after the dispatcher restarts, and pending work continues', async () => {
    const { producer, worker } = await setup((task) => task.payload);
    const dataDir = harness!.dataDir;
    const target = harness!.target;
    await harness!.server.stop();
    await eventually(() => worker.lifecycle === 'CONNECTING', 5_000, 'the worker to notice');
    harness = await startHarness({ dataDir, grpcAddress: target });
    await eventually(() => worker.lifecycle === 'RUNNING', 10_000, 'the worker to reconnect');
    expect(worker.stats.connects).toBeGreaterThanOrEqual(2);
    const { taskId } = await producer.submit({ payload: 'after restart' });
    expect((await producer.result(taskId)).toString()).toBe('after restart');
  });
});
