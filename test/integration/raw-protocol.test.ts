import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, startHarness, type Harness } from '../support/server-harness';
import type { ServerOptionsInput } from '../../src/app/server-options';
import { RawStream } from '../support/raw-client';
import { endStatus, expectStatus, getTask, RawWorker, Resources, submit, unary, unaryError, type RawClient } from './raw-peer';

/**
 * The worker protocol as a raw peer speaks it: a client built from the .proto
 * (not the SDK) sends duplicates, gaps, stale versions, wrong attempts and
 * updates for tasks it does not hold, and checks every answer exactly.
 */

const res = new Resources();
afterEach(() => res.release());

async function setup(input: ServerOptionsInput = {}): Promise<{ harness: Harness; client: RawClient }> {
  const harness = await startHarness(input);
  res.harness = harness;
  return { harness, client: res.client(harness.target) };
}

const hello = (workerId: string, slots = 1, queues = ['q']) => ({ workerId, slots, queues });

describe('update acknowledgements over a raw Connect stream', () => {
  it('answers resends, gaps, stale versions, wrong attempts, foreign tasks and bad fields exactly', async () => {
    const { harness, client } = await setup();
    const a = await RawWorker.connect(res, client, hello('worker-a'));
    const core = harness.server.options.core;
    expect(a.welcome['sessionId']).toMatch(/\S/);
    // The harness runs the seed's fixed timing: 15 s heartbeats, 45 s liveness.
    expect(a.welcome).toMatchObject({ heartbeatIntervalMs: 15_000, idleTimeoutMs: 45_000, drainGraceMs: core.drainGraceMs });

    const taskId = await submit(client, { queue: 'q', payload: Buffer.from('job') });
    const assigned = await a.assignment();
    expect(assigned).toMatchObject({ taskId, attempt: 1, queue: 'q' });
    expect(assigned['payload']).toEqual(Buffer.from('job'));
    const v: number = assigned['version'];
    expect((await getTask(client, taskId))).toMatchObject({ state: 'ASSIGNED', version: v, attempt: 1, workerId: 'worker-a' });

    const base = { taskId, attempt: 1 };
    const running = { ...base, status: 'RUNNING', version: v + 1 };

    // Next in sequence, newer version: applied.
    expect(await a.update(running, 1)).toMatchObject({ sequenceId: 1, taskId, result: 'ACCEPTED', reason: '', state: 'RUNNING', version: v + 1 });

    // The same message again (same sequence id): answered again, nothing applied.
    expect(await a.update(running, 1)).toMatchObject({ sequenceId: 1, taskId, result: 'DUPLICATE', reason: '', state: 'RUNNING', version: v + 1 });
    expect(await getTask(client, taskId)).toMatchObject({ state: 'RUNNING', version: v + 1 });

    // The same content under a new sequence id: an identical resend.
    expect(await a.update(running, 2)).toMatchObject({ sequenceId: 2, taskId, result: 'DUPLICATE', reason: '', state: 'RUNNING', version: v + 1 });

    // A gap: 3 is expected. Nothing is applied; the ack still carries the task's state and version.
    const gap = await a.update({ ...running, version: v + 2 }, 5);
    expect(gap).toMatchObject({ sequenceId: 5, taskId, result: 'REJECTED', reason: 'SEQUENCE_GAP', state: 'RUNNING', version: v + 1 });
    expect(gap['message']).toContain('expected sequence_id 3');
    expect(await getTask(client, taskId)).toMatchObject({ state: 'RUNNING', version: v + 1 });

    // 3 was not consumed by the gap: it is judged on its merits (stale version, different content).
    const stale = await a.update({ ...running, progressPermille: 500 }, 3);
    expect(stale).toMatchObject({ sequenceId: 3, result: 'REJECTED', reason: 'STALE_VERSION', state: 'RUNNING', version: v + 1 });
    expect(stale['message']).toContain(`version ${v + 1} is at or below`);

    // The stream goes on with 4: a real progress update.
    expect(await a.update({ ...running, version: v + 2, progressPermille: 500 }, 4)).toMatchObject({ result: 'ACCEPTED', state: 'RUNNING', version: v + 2 });
    let cur = v + 2;
    expect(await getTask(client, taskId)).toMatchObject({ state: 'RUNNING', version: cur, progressPermille: 500 });

    // 2 resent with different content.
    const regression = await a.update({ ...running, version: cur + 1, progressPermille: 900 }, 2);
    expect(regression).toMatchObject({ sequenceId: 2, result: 'REJECTED', reason: 'SEQUENCE_REGRESSION', state: 'RUNNING', version: cur });
    expect(regression['message']).toContain('already used for a different update');

    // A wrong attempt on a task this session holds: fenced (rule 4, the session holds attempt 1).
    const fenced = await a.update({ ...base, attempt: 2, status: 'RUNNING', version: cur + 1 }, 5);
    expect(fenced).toMatchObject({ sequenceId: 5, result: 'REJECTED', reason: 'FENCED', state: 'RUNNING', version: cur });
    expect(fenced['message']).toContain('this session holds attempt 1');

    // A task held by another session.
    const b = await RawWorker.connect(res, client, hello('worker-b'));
    const otherId = await submit(client, { queue: 'q' });
    const other = await b.assignment();
    expect(other).toMatchObject({ taskId: otherId, attempt: 1 });
    const otherBefore = await getTask(client, otherId);
    expect(otherBefore).toMatchObject({ state: 'ASSIGNED', version: other['version'], workerId: 'worker-b' });
    for (const status of ['RUNNING', 'COMPLETED', 'FAILED']) {
      const notHeld = await a.update({ taskId: otherId, attempt: 1, status, version: other['version'] + 10 });
      expect(notHeld).toMatchObject({ taskId: otherId, result: 'REJECTED', reason: 'NOT_HELD' });
      expect(notHeld['message']).toContain('not held by this session');
    }
    expect(await getTask(client, otherId)).toEqual(otherBefore);

    // A task id nobody knows.
    const unknownId = randomUUID();
    expect(await a.update({ taskId: unknownId, attempt: 1, status: 'RUNNING', version: 2 })).toMatchObject({
      taskId: unknownId,
      result: 'REJECTED',
      reason: 'NOT_HELD',
      state: 'TASK_STATE_UNSPECIFIED',
      version: 0,
    });

    // CANCELLED without a Cancel.
    const cancelled = await a.update({ ...base, status: 'CANCELLED', version: cur + 1 });
    expect(cancelled).toMatchObject({ result: 'REJECTED', reason: 'INVALID_TRANSITION', state: 'RUNNING', version: cur });
    expect(cancelled['message']).toContain('only after a Cancel');

    // Invalid fields.
    const emptyId = await a.update({ ...running, taskId: '', version: cur + 1 });
    expect(emptyId).toMatchObject({ taskId: '', result: 'REJECTED', reason: 'INVALID_UPDATE' });
    expect(emptyId['message']).toContain('task_id is empty');
    const pending = await a.update({ ...base, status: 'PENDING', version: cur + 1 });
    expect(pending).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE', state: 'RUNNING', version: cur });
    expect(pending['message']).toContain('status PENDING is not one a worker may report');
    const progress = await a.update({ ...running, version: cur + 1, progressPermille: 5000 });
    expect(progress).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE', state: 'RUNNING', version: cur });
    expect(progress['message']).toContain('progress_permille must be 0..1000');
    expect(await getTask(client, taskId)).toMatchObject({ state: 'RUNNING', version: cur, progressPermille: 500, attempt: 1 });

    // Completion.
    const completed = { ...base, status: 'COMPLETED', version: cur + 1, result: Buffer.from('result-bytes') };
    expect(await a.update(completed)).toMatchObject({ taskId, result: 'ACCEPTED', reason: '', state: 'COMPLETED', version: cur + 1 });
    cur += 1;
    const done = await getTask(client, taskId);
    expect(done).toMatchObject({ state: 'COMPLETED', version: cur, attempt: 1 });
    expect(done['result']).toEqual(Buffer.from('result-bytes'));

    // The identical COMPLETED under a new sequence id.
    const resend = await a.update(completed);
    expect(resend).toMatchObject({ taskId, result: 'DUPLICATE', reason: '', state: 'COMPLETED', version: cur });
    expect(await getTask(client, taskId)).toEqual(done);

    // A newer update after the end is refused with TERMINAL and changes nothing.
    expect(await a.update({ ...running, version: cur + 1 })).toMatchObject({ taskId, result: 'REJECTED', reason: 'TERMINAL', state: 'COMPLETED', version: cur });
    expect(await getTask(client, taskId)).toEqual(done);
    expect(a.skipped).toEqual([]);
  });

  it('fences a reconnected worker that reports on an attempt it lost', async () => {
    const { client } = await setup();
    const a = await RawWorker.connect(res, client, hello('worker-a'));
    const taskId = await submit(client, { queue: 'q' });
    const first = await a.assignment();
    expect(first).toMatchObject({ taskId, attempt: 1 });
    expect(await a.update({ taskId, attempt: 1, status: 'RUNNING', version: first['version'] + 1 })).toMatchObject({ result: 'ACCEPTED' });

    const b = await RawWorker.connect(res, client, hello('worker-b'));
    a.close(); // A's stream is gone: its lease is lost and the task is retried at once.
    const second = await b.assignment();
    expect(second).toMatchObject({ taskId, attempt: 2 });
    expect(second['version']).toBeGreaterThan(first['version'] + 1);
    const held = await getTask(client, taskId);
    expect(held).toMatchObject({ state: 'ASSIGNED', attempt: 2, version: second['version'], workerId: 'worker-b' });
    expect(held['error']).toMatchObject({ reason: 'LEASE_LOST' });

    // The same worker id comes back on a new stream and reports on attempt 1.
    const c = await RawWorker.connect(res, client, hello('worker-a'));
    for (const status of ['RUNNING', 'COMPLETED', 'FAILED']) {
      const ack = await c.update({ taskId, attempt: 1, status, version: second['version'] + 5, result: Buffer.from('late') });
      expect(ack).toMatchObject({ taskId, result: 'REJECTED', reason: 'FENCED', state: 'ASSIGNED', version: second['version'] });
      expect(ack['message']).toContain('attempt 2 is current');
    }
    // Claiming the current attempt does not help: C does not hold it.
    expect(await c.update({ taskId, attempt: 2, status: 'COMPLETED', version: second['version'] + 6 })).toMatchObject({
      result: 'REJECTED',
      reason: 'NOT_HELD',
      state: 'ASSIGNED',
      version: second['version'],
    });
    expect(await getTask(client, taskId)).toEqual(held);

    // B still owns it and finishes it.
    expect(await b.update({ taskId, attempt: 2, status: 'COMPLETED', version: second['version'] + 1 })).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED' });
    expect(await getTask(client, taskId)).toMatchObject({ state: 'COMPLETED', attempt: 2, workerId: 'worker-b' });
  });
});

/**
 * Once a terminal state is durable the task leaves memory (Engine.committed);
 * the engine remembers a summary of it, so late updates still get TERMINAL
 * with the task's final state and version.
 */
describe('late updates for a task whose end is already durable', () => {
  it('answers TERMINAL (state COMPLETED) to a newer update from the session that completed it', async () => {
    const { client } = await setup();
    const a = await RawWorker.connect(res, client, hello('worker-a'));
    const taskId = await submit(client, { queue: 'q' });
    const { version: v } = await a.assignment();
    expect(await a.update({ taskId, attempt: 1, status: 'COMPLETED', version: v + 1, result: Buffer.from('r') })).toMatchObject({ result: 'ACCEPTED', version: v + 1 });

    expect(await a.update({ taskId, attempt: 1, status: 'RUNNING', version: v + 2 })).toMatchObject({
      result: 'REJECTED',
      reason: 'TERMINAL',
      state: 'COMPLETED',
      version: v + 1,
    });
  });

  it('answers TERMINAL (state COMPLETED) to a session that never held the finished task', async () => {
    const { client } = await setup();
    const a = await RawWorker.connect(res, client, hello('worker-a'));
    const taskId = await submit(client, { queue: 'q' });
    const { version: v } = await a.assignment();
    expect(await a.update({ taskId, attempt: 1, status: 'COMPLETED', version: v + 1 })).toMatchObject({ result: 'ACCEPTED' });
    const b = await RawWorker.connect(res, client, hello('worker-b'));

    expect(await b.update({ taskId, attempt: 1, status: 'RUNNING', version: v + 2 })).toMatchObject({
      result: 'REJECTED',
      reason: 'TERMINAL',
      state: 'COMPLETED',
      version: v + 1,
    });
  });

  it('acknowledges the confirmation of a Cancel with state CANCELLED and the task version', async () => {
    const { client } = await setup();
    const w = await RawWorker.connect(res, client, hello('worker-a', 1));
    const t1 = await submit(client, { queue: 'q' });
    const first = await w.assignment();
    await unary(client, 'CancelTask', { taskId: t1 });
    await w.take('cancel');
    const cancelled = await getTask(client, t1);

    expect(await w.update({ taskId: t1, attempt: 1, status: 'CANCELLED', version: first['version'] + 1 })).toMatchObject({
      result: 'ACCEPTED',
      state: 'CANCELLED',
      version: cancelled['version'],
    });
  });
});

describe('worker Drain (end of stream)', () => {
  it('a draining session gets no new tasks, may finish the held one, then the stream ends OK', async () => {
    const { client } = await setup();
    const a = await RawWorker.connect(res, client, hello('worker-a', 4));
    const t1 = await submit(client, { queue: 'q' });
    const { version: v } = await a.assignment();

    a.send({ drain: { reason: 'deploy' } });
    await a.roundTrip(); // the Drain was handled before anything below
    const t2 = await submit(client, { queue: 'q' });

    expect(await a.update({ taskId: t1, attempt: 1, status: 'COMPLETED', version: v + 1 })).toMatchObject({ taskId: t1, result: 'ACCEPTED', state: 'COMPLETED' });
    const status = await endStatus(a.stream);
    expect(status.code).toBe(grpc.status.OK);
    // Nothing but the pong and the ack came after the Drain: no assignment of t2.
    expect(a.skipped.map((m) => m['kind'])).toEqual([]);
    expect(await getTask(client, t1)).toMatchObject({ state: 'COMPLETED' });
    expect(await getTask(client, t2)).toMatchObject({ state: 'PENDING', attempt: 1 });

    const b = await RawWorker.connect(res, client, hello('worker-b'));
    expect(await b.assignment()).toMatchObject({ taskId: t2, attempt: 1 });
  });

  it('re-queues the task of a draining session that does not finish within drainGraceMs', async () => {
    const { client } = await setup({ core: { drainGraceMs: 300 } });
    const a = await RawWorker.connect(res, client, hello('worker-a'));
    expect(a.welcome['drainGraceMs']).toBe(300);
    const taskId = await submit(client, { queue: 'q' });
    expect(await a.assignment()).toMatchObject({ taskId, attempt: 1 });
    const b = await RawWorker.connect(res, client, hello('worker-b'));

    const drainedAtMs = Date.now();
    a.send({ drain: { reason: 'deploy' } });
    const retried = await b.assignment();
    expect(retried).toMatchObject({ taskId, attempt: 2 });
    expect(Date.now() - drainedAtMs).toBeGreaterThanOrEqual(250);

    expectStatus(await endStatus(a.stream), grpc.status.UNAVAILABLE, 'drain grace expired', 'SESSION_IDLE');
    const task = await getTask(client, taskId);
    expect(task).toMatchObject({ state: 'ASSIGNED', attempt: 2, workerId: 'worker-b' });
    expect(task['error']).toMatchObject({ reason: 'LEASE_LOST' });
  });
});

describe('CancelTask on an assigned task', () => {
  it('tells the holder, which confirms; the freed slot takes the next task', async () => {
    const { client } = await setup();
    const w = await RawWorker.connect(res, client, hello('worker-a', 1));
    const t1 = await submit(client, { queue: 'q' });
    const first = await w.assignment();
    expect(first).toMatchObject({ taskId: t1, attempt: 1 });
    const t2 = await submit(client, { queue: 'q' }); // waits: the only slot is taken

    const outcome = await unary(client, 'CancelTask', { taskId: t1, reason: 'no longer needed' });
    expect(outcome).toEqual({ state: 'CANCELLED', cancelled: true });
    expect(await w.next()).toEqual({ kind: 'cancel', cancel: { taskId: t1, attempt: 1, reason: 'CANCELLED' } });
    const cancelled = await getTask(client, t1);
    expect(cancelled).toMatchObject({ state: 'CANCELLED' });
    expect(cancelled['error']).toMatchObject({ reason: 'CANCELLED' });
    expect(await getTask(client, t2)).toMatchObject({ state: 'PENDING' });

    const confirm = await w.update({ taskId: t1, attempt: 1, status: 'CANCELLED', version: first['version'] + 1 });
    expect(confirm).toMatchObject({ taskId: t1, result: 'ACCEPTED' });
    expect(await w.assignment()).toMatchObject({ taskId: t2, attempt: 1 });
    expect(await getTask(client, t1)).toEqual(cancelled);
    await eventually(async () => (await getTask(client, t2))['state'] === 'ASSIGNED', 5_000, 't2 assigned');
  });

  it('a worker that finishes anyway after a Cancel is refused; the task stays CANCELLED and the slot is freed', async () => {
    const { client } = await setup();
    const w = await RawWorker.connect(res, client, hello('worker-a', 1));
    const t1 = await submit(client, { queue: 'q' });
    const first = await w.assignment();
    await unary(client, 'CancelTask', { taskId: t1 });
    expect(await w.take('cancel')).toMatchObject({ taskId: t1, attempt: 1 });
    const cancelled = await getTask(client, t1);
    const t2 = await submit(client, { queue: 'q' });

    // Progress on the cancelled attempt: refused, the slot stays taken.
    expect(await w.update({ taskId: t1, attempt: 1, status: 'RUNNING', version: first['version'] + 1 })).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL' });
    // A final report ends the attempt: refused, but the slot is released.
    const done = await w.update({ taskId: t1, attempt: 1, status: 'COMPLETED', version: first['version'] + 2, result: Buffer.from('too late') });
    expect(done).toMatchObject({ result: 'REJECTED', reason: 'TERMINAL' });
    expect(done['message']).toContain('slot released');
    expect(await w.assignment()).toMatchObject({ taskId: t2, attempt: 1 });
    expect(await getTask(client, t1)).toEqual(cancelled);
  });
});

describe('dispatcher shutdown', () => {
  it('sends GoAway, answers UNAVAILABLE to new calls and streams, and lets a held task finish', async () => {
    const { harness, client } = await setup({ shutdownGraceMs: 5_000 });
    const busy = await RawWorker.connect(res, client, hello('worker-busy'));
    const idle = await RawWorker.connect(res, client, hello('worker-idle', 1, ['other']));
    const taskId = await submit(client, { queue: 'q' });
    const { version: v } = await busy.assignment();

    let stopped = false;
    const stopping = harness.server.stop().then(() => (stopped = true));

    for (const w of [busy, idle]) {
      const goAway = await w.take('goAway');
      expect(goAway['reason']).toBe('SHUTDOWN');
      expect(goAway['drainDeadlineUnixMs']).toBeGreaterThan(Date.now() + 3_000);
    }
    // The idle session has nothing in flight: its stream ends at once, cleanly.
    expect((await endStatus(idle.stream)).code).toBe(grpc.status.OK);

    expectStatus(await unaryError(client, 'Submit', { queue: 'q' }), grpc.status.UNAVAILABLE, 'SHUTTING_DOWN', 'SHUTTING_DOWN');
    expectStatus(await unaryError(client, 'SubmitBatch', { tasks: [{ queue: 'q' }] }), grpc.status.UNAVAILABLE, 'SHUTTING_DOWN');
    expectStatus(await unaryError(client, 'CancelTask', { taskId }), grpc.status.UNAVAILABLE, 'SHUTTING_DOWN');
    const refused = res.stream(new RawStream(client));
    refused.send({ hello: hello('worker-late') });
    const refusedStatus = await endStatus(refused);
    expectStatus(refusedStatus, grpc.status.UNAVAILABLE, 'the dispatcher is stopping', 'SHUTTING_DOWN');
    expect(stopped).toBe(false); // still waiting for the held task

    // The held task may still be finished on the draining stream; then the stream ends OK and the stop completes.
    expect(await busy.update({ taskId, attempt: 1, status: 'COMPLETED', version: v + 1 })).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED' });
    expect((await endStatus(busy.stream)).code).toBe(grpc.status.OK);
    await stopping;
    expect(harness.server.dispatcher.lifecycle).toBe('STOPPED');
  });
});
