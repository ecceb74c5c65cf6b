import { randomUUID } from 'node:crypto';
import { MAX_SLOTS_PER_SESSION } from '../../src/core/options';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RawStream } from '../support/raw-client';
import { eventually, startHarness, type Harness } from '../support/server-harness';
import { endStatus, expectStatus, getTask, RawWorker, Resources, submit, unary, unaryError, type Msg, type RawClient } from './raw-peer';

/**
 * Hostile and malformed input over real gRPC: every RPC answers with the right
 * status and a message naming the problem, and a broken worker stream ends
 * only itself.
 */

// The wire limit: a worker above the slot limit in force is capped, not refused.
const MAX_SLOTS = MAX_SLOTS_PER_SESSION;
const HELLO_TIMEOUT_MS = 300;

interface Hostile {
  name: string;
  send(stream: RawStream): void;
  code: grpc.status;
  mentions: string;
}

const hostileHello = (patch: Msg = {}): Msg => ({ hello: { workerId: 'hostile', slots: 1, queues: ['hostile-q'], ...patch } });

const HOSTILE: Hostile[] = [
  {
    name: 'first message is not Hello',
    send: (s) => s.send({ setSlots: { slots: 1 } }),
    code: grpc.status.FAILED_PRECONDITION,
    mentions: 'the first message must be Hello, got setSlots',
  },
  {
    name: 'first message is updates',
    send: (s) => s.send({ updates: { updates: [{ taskId: randomUUID(), attempt: 1, status: 'COMPLETED', sequenceId: 1, version: 2 }] } }),
    code: grpc.status.FAILED_PRECONDITION,
    mentions: 'the first message must be Hello, got updates',
  },
  {
    name: 'first message is empty',
    send: (s) => s.send({}),
    code: grpc.status.FAILED_PRECONDITION,
    mentions: 'the first message must be Hello, got an empty message',
  },
  {
    name: 'Hello with slots 0',
    send: (s) => s.send(hostileHello({ slots: 0 })),
    code: grpc.status.INVALID_ARGUMENT,
    mentions: `invalid Hello: slots must be 1..${MAX_SLOTS}, got 0`,
  },
  {
    name: 'Hello with slots above the max',
    send: (s) => s.send(hostileHello({ slots: MAX_SLOTS + 1 })),
    code: grpc.status.INVALID_ARGUMENT,
    mentions: `slots must be 1..${MAX_SLOTS}, got ${MAX_SLOTS + 1}`,
  },
  {
    name: 'Hello with an empty worker id',
    send: (s) => s.send(hostileHello({ workerId: '' })),
    code: grpc.status.INVALID_ARGUMENT,
    mentions: 'invalid Hello: worker_id "" must match',
  },
  {
    name: 'Hello with a bad worker id',
    send: (s) => s.send(hostileHello({ workerId: 'bad id!' })),
    code: grpc.status.INVALID_ARGUMENT,
    mentions: 'worker_id "bad id!" must match',
  },
  {
    name: 'Hello with a 100 kB worker id',
    send: (s) => s.send(hostileHello({ workerId: 'x'.repeat(100_000) })),
    code: grpc.status.INVALID_ARGUMENT,
    mentions: 'worker_id "xxxx',
  },
  {
    name: 'Hello with a bad queue name',
    send: (s) => s.send(hostileHello({ queues: ['ok', 'bad queue!'] })),
    code: grpc.status.INVALID_ARGUMENT,
    mentions: 'queue "bad queue!" must match',
  },
  {
    name: 'a second Hello',
    send: (s) => {
      s.send(hostileHello());
      s.send(hostileHello());
    },
    code: grpc.status.FAILED_PRECONDITION,
    mentions: 'Hello may be sent only once per stream',
  },
  {
    name: 'set_slots above the max',
    send: (s) => {
      s.send(hostileHello());
      s.send({ setSlots: { slots: MAX_SLOTS + 1 } });
    },
    code: grpc.status.INVALID_ARGUMENT,
    mentions: `set_slots.slots must be 0..${MAX_SLOTS}, got ${MAX_SLOTS + 1}`,
  },
  {
    name: 'more than 10,000 updates in one message',
    send: (s) => {
      s.send(hostileHello());
      const update = { taskId: 't', attempt: 1, status: 'RUNNING', version: 2 };
      s.send({ updates: { updates: Array.from({ length: 10_001 }, (_, i) => ({ ...update, sequenceId: i + 1 })) } });
    },
    code: grpc.status.RESOURCE_EXHAUSTED,
    mentions: 'at most 10000 updates per message',
  },
  {
    name: 'no Hello at all',
    send: () => undefined,
    code: grpc.status.DEADLINE_EXCEEDED,
    mentions: `no Hello within ${HELLO_TIMEOUT_MS} ms`,
  },
];

/** A WorkerMessage{hello: Hello{worker_id, slots: 1, queues: [queue]}} encoded by hand (every length < 128). */
function helloBytes(workerId: string, queue: string): Buffer {
  const field = (tag: number, bytes: Buffer): Buffer => Buffer.concat([Buffer.from([tag, bytes.length]), bytes]);
  const hello = Buffer.concat([field(0x0a, Buffer.from(workerId)), Buffer.from([0x20, 0x01]), field(0x2a, Buffer.from(queue))]);
  return field(0x0a, hello);
}

/** Field 1 (hello), length-delimited, with a length far past the end: not a valid WorkerMessage. */
const GARBAGE = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);

/** The outcome of a server-streaming call: its messages and its final status. */
function serverStream(call: grpc.ClientReadableStream<Msg>): Promise<{ messages: Msg[]; status: grpc.StatusObject }> {
  const messages: Msg[] = [];
  return new Promise((resolve) => {
    call.on('data', (m: Msg) => messages.push(m));
    call.on('error', () => undefined); // the status event carries the same information
    call.on('status', (status: grpc.StatusObject) => resolve({ messages, status }));
  });
}

describe('hostile worker streams', () => {
  let harness: Harness;
  let client: RawClient;
  const res = new Resources();

  beforeAll(async () => {
    harness = await startHarness({ helloTimeoutMs: HELLO_TIMEOUT_MS, core: { maxSlotsPerSession: 16 } });
  });
  afterEach(() => res.release());
  afterAll(() => harness.cleanup());

  it.each(HOSTILE)('$name: the stream ends with the right status', async ({ send, code, mentions }) => {
    client = res.client(harness.target);
    const stream = res.stream(new RawStream(client));
    send(stream);
    expectStatus(await endStatus(stream), code, mentions, 'PROTOCOL_VIOLATION');
  });

  it('bytes that are not a WorkerMessage end that stream with INTERNAL', async () => {
    const generic = res.genericClient(harness.target);
    const call = res.call(generic.makeBidiStreamRequest('/zonal.v1.Dispatcher/Connect', (b: Buffer) => b, (b: Buffer) => b));
    const done = serverStream(call as unknown as grpc.ClientReadableStream<Msg>);
    call.write(GARBAGE);
    const { status } = await done;
    expectStatus(status, grpc.status.INTERNAL, 'Error deserializing request');
  });

  it('a well-behaved session keeps receiving and completing tasks while hostile streams are killed around it', async () => {
    client = res.client(harness.target);
    const errorsBefore = harness.server.dispatcher.errorsReported;
    const good = await RawWorker.connect(res, client, { workerId: 'good', slots: 2, queues: ['q'] });
    const sessionsBefore = harness.server.dispatcher.engine.sessionCount;

    // The good worker completes every assignment as soon as it arrives.
    let seq = 0;
    const accepted = new Set<string>();
    good.stream.call.on('data', (m: Msg) => {
      if (m['kind'] === 'assignments') {
        for (const a of m['assignments']['assignments'] as Msg[]) {
          good.send({ updates: { updates: [{ taskId: a['taskId'], attempt: a['attempt'], status: 'COMPLETED', version: a['version'] + 1, sequenceId: ++seq, result: Buffer.from('ok') }] } });
        }
      } else if (m['kind'] === 'acks') {
        for (const ack of m['acks']['acks'] as Msg[]) if (ack['result'] === 'ACCEPTED') accepted.add(ack['taskId']);
      }
    });

    const ROUNDS = 2;
    const taskIds: string[] = [];
    const killed: Promise<void>[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const hostile of HOSTILE) {
        const stream = res.stream(new RawStream(client));
        hostile.send(stream);
        killed.push(endStatus(stream).then((status) => expectStatus(status, hostile.code, hostile.mentions, 'PROTOCOL_VIOLATION')));
        taskIds.push(await submit(client, { queue: 'q', payload: Buffer.from(`task ${taskIds.length}`) }));
      }
    }
    await Promise.all(killed);

    await eventually(() => accepted.size === taskIds.length, 5_000, `${taskIds.length} tasks completed by the good worker`);
    for (const taskId of taskIds) {
      expect(await getTask(client, taskId)).toMatchObject({ state: 'COMPLETED', attempt: 1, workerId: 'good' });
    }
    expect(good.stream.ended).toBe(false);
    await good.roundTrip();
    expect(good.stream.ended).toBe(false);
    await eventually(() => harness.server.dispatcher.engine.sessionCount === sessionsBefore, 2_000, 'hostile sessions gone');
    expect(harness.server.dispatcher.errorsReported).toBe(errorsBefore);
  });

  it('a protocol violation by a session holding a task re-queues that task to another session', async () => {
    client = res.client(harness.target);
    const hostile = await RawWorker.connect(res, client, { workerId: 'hostile', slots: 1, queues: ['hq'] });
    const taskId = await submit(client, { queue: 'hq' });
    expect(await hostile.assignment()).toMatchObject({ taskId, attempt: 1 });
    const good = await RawWorker.connect(res, client, { workerId: 'good', slots: 1, queues: ['hq'] });

    hostile.send(hostileHello());
    expectStatus(await endStatus(hostile.stream), grpc.status.FAILED_PRECONDITION, 'Hello may be sent only once', 'PROTOCOL_VIOLATION');
    const retried = await good.assignment();
    expect(retried).toMatchObject({ taskId, attempt: 2 });
    expect(await good.update({ taskId, attempt: 2, status: 'COMPLETED', version: retried['version'] + 1 })).toMatchObject({ result: 'ACCEPTED' });
    const task = await getTask(client, taskId);
    expect(task).toMatchObject({ state: 'COMPLETED', attempt: 2, workerId: 'good' });
    expect(task['error']).toBeNull();
  });

  it('undecodable bytes from a session holding a task end only that session and re-queue its task', async () => {
    client = res.client(harness.target);
    const generic = res.genericClient(harness.target);
    const call = res.call(generic.makeBidiStreamRequest('/zonal.v1.Dispatcher/Connect', (b: Buffer) => b, (b: Buffer) => b));
    const done = serverStream(call as unknown as grpc.ClientReadableStream<Msg>);
    call.write(helloBytes('garbage-worker', 'gq'));
    const taskId = await submit(client, { queue: 'gq' });
    await eventually(async () => (await getTask(client, taskId))['workerId'] === 'garbage-worker', 5_000, 'task assigned to the garbage worker');
    const good = await RawWorker.connect(res, client, { workerId: 'good', slots: 1, queues: ['gq'] });

    call.write(GARBAGE);
    expectStatus((await done).status, grpc.status.INTERNAL, 'Error deserializing request');
    const retried = await good.assignment();
    expect(retried).toMatchObject({ taskId, attempt: 2 });
    expect(await getTask(client, taskId)).toMatchObject({ state: 'ASSIGNED', attempt: 2, workerId: 'good' });
  });

  it('rejects out-of-range numbers in updates as INVALID_UPDATE without touching the task', async () => {
    client = res.client(harness.target);
    const w = await RawWorker.connect(res, client, { workerId: 'numbers', slots: 1, queues: ['nq'] });
    const taskId = await submit(client, { queue: 'nq' });
    const { version: v } = await w.assignment();
    const before = await getTask(client, taskId);

    const hugeVersion = await w.update({ taskId, attempt: 1, status: 'RUNNING', version: 2 ** 60 });
    expect(hugeVersion).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE', state: 'ASSIGNED', version: v });
    expect(hugeVersion['message']).toContain('version must be >= 1');
    const zeroAttempt = await w.update({ taskId, attempt: 0, status: 'RUNNING', version: v + 1 });
    expect(zeroAttempt).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE' });
    expect(zeroAttempt['message']).toContain('attempt must be >= 1');
    const unspecified = await w.update({ taskId, attempt: 1, status: 'TASK_STATE_UNSPECIFIED', version: v + 1 });
    expect(unspecified).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE' });
    expect(await getTask(client, taskId)).toEqual(before);

    // sequence_id 0 is never valid and does not consume a sequence id.
    w.send({ updates: { updates: [{ taskId, attempt: 1, status: 'RUNNING', version: v + 1, sequenceId: 0 }] } });
    const [zeroSeq] = (await w.take('acks'))['acks'] as Msg[];
    expect(zeroSeq).toMatchObject({ sequenceId: 0, result: 'REJECTED', reason: 'INVALID_UPDATE' });
    expect(await w.update({ taskId, attempt: 1, status: 'RUNNING', version: v + 1 })).toMatchObject({ sequenceId: 4, result: 'ACCEPTED', version: v + 1 });
    expect(w.stream.ended).toBe(false);
  });
});

describe('unary validation', () => {
  let harness: Harness;
  let client: RawClient;
  const res = new Resources();

  beforeAll(async () => {
    harness = await startHarness({ core: { maxPayloadBytes: 1024, maxBatchTasks: 5 } });
  });
  afterEach(() => res.release());
  afterAll(() => harness.cleanup());

  it.each([
    ['priority 5000', { priority: 5000 }, 'priority: must be an integer in -1000..1000, got 5000'],
    ['priority -5000', { priority: -5000 }, 'priority: must be an integer in -1000..1000, got -5000'],
    ['queue "bad queue!"', { queue: 'bad queue!' }, 'queue: "bad queue!" must match'],
    ['max_attempts 5000', { maxAttempts: 5000 }, 'max_attempts: must be 1..1000 (0 for the default), got 5000'],
    ['attempt_timeout_ms of 31 days', { attemptTimeoutMs: 31 * 24 * 3600_000 }, 'attempt_timeout_ms: must be a whole number of milliseconds, 1..2592000000 (30 days'],
    ['schedule_to_start_timeout_ms of 31 days', { scheduleToStartTimeoutMs: 31 * 24 * 3600_000 }, 'schedule_to_start_timeout_ms: must be at most'],
    ['not_before_unix_ms two years ahead', { notBeforeUnixMs: Date.now() + 2 * 365 * 24 * 3600_000 }, 'not_before_unix_ms: must be within one year'],
    ['content_type of 257 characters', { contentType: 'x'.repeat(257) }, 'content_type: must be at most 256 characters'],
    ['idempotency_key of 257 characters', { idempotencyKey: 'k'.repeat(257) }, 'idempotency_key: must be at most 256 characters'],
    ['65 labels', { labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }, 'labels: at most 64 labels'],
    ['preferred_zone "no zone"', { preferredZone: 'no zone' }, 'preferred_zone: "no zone" must match'],
  ])('Submit with %s is INVALID_ARGUMENT naming the field', async (_name, fields, mentions) => {
    client = res.client(harness.target);
    expectStatus(await unaryError(client, 'Submit', { queue: 'q', ...fields }), grpc.status.INVALID_ARGUMENT, `INVALID_ARGUMENT: ${mentions}`, 'INVALID_ARGUMENT');
  });

  it('a payload above maxPayloadBytes is RESOURCE_EXHAUSTED; one at the limit is accepted', async () => {
    client = res.client(harness.target);
    const err = await unaryError(client, 'Submit', { queue: 'q', payload: Buffer.alloc(1025, 1) });
    expectStatus(err, grpc.status.RESOURCE_EXHAUSTED, 'payload is 1025 bytes; the limit is 1024 (maxPayloadBytes)', 'PAYLOAD_TOO_LARGE');
    const taskId = await submit(client, { queue: 'q', payload: Buffer.alloc(1024, 1) });
    expect((await getTask(client, taskId))['payload']).toHaveLength(1024);
  });

  it('a batch above maxBatchTasks is RESOURCE_EXHAUSTED as a whole', async () => {
    client = res.client(harness.target);
    const err = await unaryError(client, 'SubmitBatch', { tasks: Array.from({ length: 6 }, () => ({ queue: 'q' })) });
    expectStatus(err, grpc.status.RESOURCE_EXHAUSTED, 'a batch holds at most 5 tasks (maxBatchTasks), got 6', 'BATCH_TOO_LARGE');
  });

  it('SubmitBatch refuses the bad tasks one by one and creates the good ones', async () => {
    client = res.client(harness.target);
    const { results } = await unary<{ results: Msg[] }>(client, 'SubmitBatch', {
      tasks: [{ queue: 'q', priority: 5000 }, { queue: 'q', payload: Buffer.from('good') }, { queue: 'q', payload: Buffer.alloc(2000) }],
    });
    expect(results).toHaveLength(3);
    expect(results[0]).toMatchObject({ taskId: '', deduplicated: false, error: { code: grpc.status.INVALID_ARGUMENT, reason: 'INVALID_ARGUMENT', retryable: false } });
    expect(results[0]!['error']['message']).toContain('priority');
    expect(results[1]!['taskId']).toMatch(/\S/);
    expect(results[1]).toMatchObject({ deduplicated: false, error: null });
    expect(results[2]).toMatchObject({ taskId: '', error: { code: grpc.status.RESOURCE_EXHAUSTED, reason: 'PAYLOAD_TOO_LARGE' } });
    const good = await getTask(client, results[1]!['taskId']);
    expect(good).toMatchObject({ state: 'PENDING', queue: 'q' });
    expect(good['payload']).toEqual(Buffer.from('good'));
  });

  it('GetTask and CancelTask validate task_id: empty or too long is INVALID_ARGUMENT, unknown is NOT_FOUND', async () => {
    client = res.client(harness.target);
    const unknown = randomUUID();
    for (const method of ['GetTask', 'CancelTask']) {
      expectStatus(await unaryError(client, method, { taskId: '' }), grpc.status.INVALID_ARGUMENT, 'task_id: is required', 'INVALID_ARGUMENT');
      expectStatus(await unaryError(client, method, { taskId: 'x'.repeat(129) }), grpc.status.INVALID_ARGUMENT, 'task_id: must be at most 128 characters');
      expectStatus(await unaryError(client, method, { taskId: unknown }), grpc.status.NOT_FOUND, `no task ${unknown}`, 'TASK_NOT_FOUND');
    }
    const taskId = await submit(client, { queue: 'q' });
    expectStatus(await unaryError(client, 'CancelTask', { taskId, reason: 'r'.repeat(1025) }), grpc.status.INVALID_ARGUMENT, 'reason: must be at most 1024 characters');
    expect(await getTask(client, taskId)).toMatchObject({ state: 'PENDING' });
  });

  it('WatchTask: unknown id is NOT_FOUND, empty id is INVALID_ARGUMENT', async () => {
    client = res.client(harness.target);
    const unknown = randomUUID();
    const notFound = await serverStream(res.call(client['WatchTask']!({ taskId: unknown }) as grpc.ClientReadableStream<Msg>));
    expect(notFound.messages).toEqual([]);
    expectStatus(notFound.status, grpc.status.NOT_FOUND, `no task ${unknown}`, 'TASK_NOT_FOUND');
    const empty = await serverStream(res.call(client['WatchTask']!({ taskId: '' }) as grpc.ClientReadableStream<Msg>));
    expectStatus(empty.status, grpc.status.INVALID_ARGUMENT, 'task_id: is required', 'INVALID_ARGUMENT');
  });

  it('idempotency: the same key returns the same task, also after it finished; cancelling a finished task changes nothing', async () => {
    client = res.client(harness.target);
    const key = `key-${randomUUID()}`;
    const first = await unary<Msg>(client, 'Submit', { queue: 'idem', idempotencyKey: key, payload: Buffer.from('one') });
    expect(first).toMatchObject({ deduplicated: false });
    const second = await unary<Msg>(client, 'Submit', { queue: 'idem', idempotencyKey: key, payload: Buffer.from('two') });
    expect(second).toEqual({ taskId: first['taskId'], deduplicated: true, servedBy: first['servedBy'] });
    const { results } = await unary<{ results: Msg[] }>(client, 'SubmitBatch', { tasks: [{ queue: 'idem', idempotencyKey: key }] });
    expect(results[0]).toMatchObject({ taskId: first['taskId'], deduplicated: true, error: null });

    const w = await RawWorker.connect(res, client, { workerId: 'idem-worker', slots: 4, queues: ['idem'] });
    const a = await w.assignment();
    expect(a).toMatchObject({ taskId: first['taskId'], payload: Buffer.from('one') });
    expect(await w.update({ taskId: a['taskId'], attempt: 1, status: 'COMPLETED', version: a['version'] + 1, result: Buffer.from('r') })).toMatchObject({
      result: 'ACCEPTED',
    });
    const done = await getTask(client, first['taskId']);
    expect(done).toMatchObject({ state: 'COMPLETED' });

    expect(await unary(client, 'Submit', { queue: 'idem', idempotencyKey: key })).toEqual({ taskId: first['taskId'], deduplicated: true, servedBy: first['servedBy'] });
    expect(await unary(client, 'CancelTask', { taskId: first['taskId'], reason: 'too late' })).toEqual({ state: 'COMPLETED', cancelled: false });
    expect(await getTask(client, first['taskId'])).toEqual(done);
    await w.roundTrip();
    expect(w.skipped.filter((m) => m['kind'] !== 'pong')).toEqual([]); // one task only, and no Cancel
  });
});

describe('payload limit with the default configuration', () => {
  let harness: Harness;
  const res = new Resources();

  beforeAll(async () => {
    harness = await startHarness();
  });
  afterEach(() => res.release());
  afterAll(() => harness.cleanup());

  it('4 MiB + 1 byte is RESOURCE_EXHAUSTED; exactly 4 MiB is accepted', async () => {
    expect(harness.server.options.core.maxPayloadBytes).toBe(4 * 1024 * 1024);
    const client = res.client(harness.target);
    const err = await unaryError(client, 'Submit', { queue: 'big', payload: Buffer.alloc(4 * 1024 * 1024 + 1) });
    expectStatus(err, grpc.status.RESOURCE_EXHAUSTED, `payload is ${4 * 1024 * 1024 + 1} bytes; the limit is ${4 * 1024 * 1024}`, 'PAYLOAD_TOO_LARGE');
    // (Not read back: a 4 MiB TaskInfo exceeds the client's default 4 MiB receive limit.)
    expect(await unary(client, 'Submit', { queue: 'big', payload: Buffer.alloc(4 * 1024 * 1024) })).toMatchObject({ taskId: expect.stringMatching(/\S/), deduplicated: false });
  });
});
