import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { dispatcherService } from '../../src/protocol/service';
import type { WireSubmitRequest } from '../../src/protocol/wire';

const CALL_TIMEOUT_MS = 300;

interface Arrival {
  arrivedAtMs: number;
  /** The deadline as the server saw it (from the grpc-timeout header). */
  deadlineMs: number;
  keys: string[];
}

/** A fake zonal.v1.Dispatcher on 127.0.0.1 port 0; methods not given answer UNIMPLEMENTED. */
async function startFakeDispatcher(implementation: grpc.UntypedServiceImplementation): Promise<{ server: grpc.Server; target: string }> {
  const server = new grpc.Server();
  server.addService(dispatcherService().definition, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
  );
  return { server, target: `127.0.0.1:${port}` };
}

function deadlineMs(deadline: grpc.Deadline): number {
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

describe('SDK deadlines: every retry carries a fresh deadline', () => {
  const servers: grpc.Server[] = [];
  const producers: ProducerClient[] = [];
  const timers: NodeJS.Timeout[] = [];

  afterEach(() => {
    for (const t of timers.splice(0)) clearTimeout(t);
    for (const p of producers.splice(0)) p.close();
    for (const s of servers.splice(0)) s.forceShutdown();
  });

  it('a SubmitBatch retried after DEADLINE_EXCEEDED arrives with a new deadline and the same idempotency key', async () => {
    const arrivals: Arrival[] = [];
    const { server, target } = await startFakeDispatcher({
      SubmitBatch: (call: grpc.ServerUnaryCall<{ tasks: WireSubmitRequest[] }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        // An empty batch is ready()'s warm-up, not a submit: answered, not counted.
        if (call.request.tasks.length === 0) return callback(null, { results: [], servedBy: 'test/fake' });
        arrivals.push({ arrivedAtMs: Date.now(), deadlineMs: deadlineMs(call.getDeadline()), keys: call.request.tasks.map((t) => t.idempotencyKey) });
        const answer = { results: call.request.tasks.map((t) => ({ taskId: `task-${t.idempotencyKey}`, deduplicated: arrivals.length > 1 })), servedBy: 'test/fake' };
        // The first attempt sleeps past its deadline; later ones answer at once.
        if (arrivals.length === 1) timers.push(setTimeout(() => callback(null, answer), CALL_TIMEOUT_MS * 2));
        else callback(null, answer);
      },
    });
    servers.push(server);
    const producer = new ProducerClient({ target, call: { callTimeoutMs: CALL_TIMEOUT_MS, maxAttempts: 3, backoff: { initialMs: 10, jitter: 0 } } });
    producers.push(producer);
    // Connected first, so the first attempt's time is not spent on the handshake.
    await producer.ready({ deadlineMs: 5_000 });

    const outcome = await producer.submit({ payload: 'once' });

    expect(arrivals).toHaveLength(2);
    const [first, second] = arrivals as [Arrival, Arrival];
    // Each attempt's deadline is about callTimeoutMs after that attempt arrived...
    for (const a of arrivals) {
      expect(a.deadlineMs - a.arrivedAtMs).toBeLessThanOrEqual(CALL_TIMEOUT_MS + 5);
      expect(a.deadlineMs - a.arrivedAtMs).toBeGreaterThan(CALL_TIMEOUT_MS - 100);
    }
    // ...so the retry's deadline is a new one, at least a whole timeout later (the first had to expire first).
    expect(second.arrivedAtMs).toBeGreaterThanOrEqual(first.deadlineMs - 5);
    expect(second.deadlineMs - first.deadlineMs).toBeGreaterThanOrEqual(CALL_TIMEOUT_MS - 5);
    // One logical submit, one generated key, sent on both attempts: the dispatcher deduplicates the retry.
    expect(first.keys).toHaveLength(1);
    expect(first.keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.keys).toEqual(first.keys);
    expect(outcome.taskId).toBe(`task-${first.keys[0]}`);
    // The retry found the task its own first attempt made: with a key the SDK made, that is no duplicate to the caller.
    expect(outcome.deduplicated).toBe(false);
    // With a key the caller chose, the dispatcher's answer stands: another submit may have used it.
    expect((await producer.submit({ payload: 'again', idempotencyKey: 'callers-own' })).deduplicated).toBe(true);
    expect(producer.circuitState()).toBe('CLOSED');
  });

  it('gives every logical submit its own idempotency key, and keeps a caller-given one', async () => {
    const keys: string[] = [];
    const { server, target } = await startFakeDispatcher({
      SubmitBatch: (call: grpc.ServerUnaryCall<{ tasks: WireSubmitRequest[] }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        keys.push(...call.request.tasks.map((t) => t.idempotencyKey));
        callback(null, { results: call.request.tasks.map((t) => ({ taskId: `task-${t.idempotencyKey}` })), servedBy: 'test/fake' });
      },
    });
    servers.push(server);
    const producer = new ProducerClient({ target, call: { callTimeoutMs: 5_000 } });
    producers.push(producer);
    await producer.submitMany([{ payload: 'a' }, { payload: 'b' }, { payload: 'c', idempotencyKey: 'order-42' }]);
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(3);
    expect(keys).toContain('order-42');
  });
});
