/**
 * The proto's 64-bit fields over real gRPC, from a raw peer that sends and
 * reads them as exact decimal strings: out-of-range values are refused with
 * a reason naming the range, never rounded; echoes (ack sequence ids, Pong)
 * are exact; and no version a worker sends can make a task uncompletable
 * for a later attempt, or keep WatchTask from ending.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ATTEMPT_VERSION_SPAN } from '../../src/core/update-rules';
import { startHarness, type Harness } from '../support/server-harness';
import { seededRandom } from '../support/core-harness';
import { expectStatus, getTask, RawWorker, Resources, submit, unary, unaryError, type Msg, type RawClient } from './raw-peer';

const res = new Resources();
afterEach(() => res.release());

const MAX_U64 = (2n ** 64n - 1n).toString();
const MAX_I64 = (2n ** 63n - 1n).toString();

async function setup(): Promise<{ harness: Harness; client: RawClient }> {
  // Short retry backoff so attempt 2 follows a timeout quickly.
  const harness = await startHarness({ core: { backoff: { initialMs: 20, multiplier: 1, maxMs: 20, jitter: 0 } } });
  res.harness = harness;
  return { harness, client: res.client(harness.target, { exact64: true }) };
}

/** A WatchTask stream that records every TaskInfo and how it ended. */
function watch(client: RawClient, taskId: string): { infos: Msg[]; ended: Promise<grpc.StatusObject> } {
  const infos: Msg[] = [];
  const call = res.call(client['WatchTask']!({ taskId }, { deadline: Date.now() + 30_000 }) as grpc.ClientReadableStream<Msg>);
  call.on('data', (info: Msg) => infos.push(info));
  const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => undefined);
  return { infos, ended };
}

describe('64-bit fields from a raw peer', () => {
  it('the testers\' scenario: a version of 2^53-1 no longer makes the task uncompletable, and WatchTask ends', async () => {
    const { client } = await setup();
    const w = await RawWorker.connect(res, client, { workerId: 'raw', slots: 2, queues: ['q'] });
    const taskId = await submit(client, { queue: 'q', attemptTimeoutMs: 600, maxAttempts: 2 });
    const watched = watch(client, taskId);
    const a1 = await w.assignment();
    const assigned = BigInt(a1['version']);
    const base = { taskId, attempt: 1 };

    // 2^53-1 is far outside attempt 1's range: refused, the task untouched.
    const huge = await w.update({ ...base, status: 'RUNNING', version: '9007199254740991' });
    expect(huge).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE', state: 'ASSIGNED', version: a1['version'] });
    expect(huge['message']).toContain(`out of this attempt's range ${assigned + 1n}..${assigned + BigInt(ATTEMPT_VERSION_SPAN)}`);
    // Past 2^64 is not even a version: refused, never rounded.
    expect(await w.update({ ...base, status: 'RUNNING', version: MAX_U64 })).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE' });

    // The top of its range is allowed; the worker then has nothing left for COMPLETED.
    const top = (assigned + BigInt(ATTEMPT_VERSION_SPAN)).toString();
    expect(await w.update({ ...base, status: 'RUNNING', version: top })).toMatchObject({ result: 'ACCEPTED', state: 'RUNNING', version: top });
    expect(await w.update({ ...base, status: 'COMPLETED', version: (BigInt(top) + 1n).toString() })).toMatchObject({ result: 'REJECTED', reason: 'INVALID_UPDATE', state: 'RUNNING', version: top });

    // Attempt 1 times out; attempt 2 starts above it, with its full range.
    const cancel = await w.take('cancel', 10_000);
    expect(cancel).toMatchObject({ taskId, attempt: 1, reason: 'ATTEMPT_TIMEOUT' });
    const a2 = await w.assignment();
    expect(a2).toMatchObject({ taskId, attempt: 2 });
    expect(BigInt(a2['version'])).toBeGreaterThan(BigInt(top));
    const done = (BigInt(a2['version']) + 1n).toString();
    expect(await w.update({ taskId, attempt: 2, status: 'COMPLETED', version: done, result: Buffer.from('ok') })).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: done });
    expect(await getTask(client, taskId)).toMatchObject({ state: 'COMPLETED', attempt: 2, version: done });

    // WatchTask delivered the final state, then ended.
    const status = await watched.ended;
    expect(status.code).toBe(grpc.status.OK);
    expect(watched.infos.at(-1)).toMatchObject({ state: 'COMPLETED', version: done });
  });

  it('echoes sequence ids and Ping fields exactly, and refuses an out-of-range sequence id without consuming it', async () => {
    const { client } = await setup();
    const w = await RawWorker.connect(res, client, { workerId: 'raw', slots: 1, queues: ['q'] });
    const taskId = await submit(client, { queue: 'q' });
    const a = await w.assignment();
    const running = { taskId, attempt: 1, status: 'RUNNING', version: Number(a['version']) + 1 };

    for (const seq of [MAX_I64, MAX_U64, '9007199254740992']) {
      const ack = await w.update(running, seq);
      expect(ack).toMatchObject({ sequenceId: seq, result: 'REJECTED', reason: 'INVALID_UPDATE', state: 'ASSIGNED' });
      expect(ack['message']).toContain('sequence_id must be >= 1 and at most 9007199254740991');
    }
    // Not consumed: the stream still starts at 1. The largest id allowed is a gap here, echoed exactly.
    expect(await w.update(running, '9007199254740991')).toMatchObject({ sequenceId: '9007199254740991', result: 'REJECTED', reason: 'SEQUENCE_GAP' });
    expect(await w.update(running, 1)).toMatchObject({ sequenceId: '1', result: 'ACCEPTED', state: 'RUNNING' });

    w.send({ ping: { nonce: MAX_U64, sentUnixMs: MAX_I64 } });
    expect(await w.take('pong')).toEqual({ nonce: MAX_U64, sentUnixMs: MAX_I64 });
  });

  it('refuses submit durations and instants past their range, naming the field, on Submit and per task in SubmitBatch', async () => {
    const { client } = await setup();
    for (const [field, value] of [
      ['attempt_timeout_ms', { attemptTimeoutMs: MAX_U64 }],
      ['attempt_timeout_ms', { attemptTimeoutMs: '9007199254740993' }],
      ['schedule_to_start_timeout_ms', { scheduleToStartTimeoutMs: MAX_I64 }],
      ['not_before_unix_ms', { notBeforeUnixMs: MAX_U64 }],
    ] as const) {
      const err = await unaryError(client, 'Submit', { queue: 'q', ...value });
      expectStatus(err, grpc.status.INVALID_ARGUMENT, field, 'INVALID_ARGUMENT');
    }
    const batch = await unary<{ results: Msg[] }>(client, 'SubmitBatch', { tasks: [{ queue: 'q', attemptTimeoutMs: MAX_U64 }, { queue: 'q', attemptTimeoutMs: '1000' }] });
    expect(batch.results[0]).toMatchObject({ taskId: '', error: { reason: 'INVALID_ARGUMENT' } });
    expect(batch.results[0]!['error']['message']).toContain('attempt_timeout_ms');
    expect(batch.results[1]).toMatchObject({ error: null });
    expect(await getTask(client, batch.results[1]!['taskId'])).toMatchObject({ state: 'PENDING' });
  });

  it('answers 300 seeded draws across the 64-bit range as the rules say, and the task still completes', async () => {
    const { client } = await setup();
    const w = await RawWorker.connect(res, client, { workerId: 'raw', slots: 1, queues: ['q'] });
    const taskId = await submit(client, { queue: 'q', attemptTimeoutMs: 600_000 });
    const a = await w.assignment();
    const assigned = BigInt(a['version']);
    const span = BigInt(ATTEMPT_VERSION_SPAN);
    const rnd = seededRandom(64);
    const draw = (): bigint => {
      const bits = BigInt(1 + Math.floor(rnd() * 64));
      return ((BigInt(Math.floor(rnd() * 2 ** 32)) << 32n) | BigInt(Math.floor(rnd() * 2 ** 32))) & ((1n << bits) - 1n);
    };
    let nextSeq = 1n;
    let version = assigned;
    const counts: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const inOrder = rnd() < 0.6;
      const seq = inOrder ? nextSeq : nextSeq + 1n + draw();
      const v = rnd() < 0.5 ? draw() : version + 1n + BigInt(Math.floor(rnd() * 2 ** 20));
      const ack = await w.update({ taskId, attempt: 1, status: 'RUNNING', version: v.toString() }, seq.toString());
      expect(ack['sequenceId']).toBe(seq.toString());
      let want: string;
      if (seq > 2n ** 53n - 1n) want = 'INVALID_UPDATE';
      else if (!inOrder) want = 'SEQUENCE_GAP';
      else if (v < 1n || v > 2n ** 53n - 1n || v > assigned + span) want = 'INVALID_UPDATE';
      else if (v <= version) want = 'STALE_VERSION';
      else want = '';
      expect(ack['reason'], `draw ${i}: seq ${seq} version ${v}`).toBe(want);
      if (inOrder) nextSeq += 1n;
      if (want === '') version = v;
      expect(ack['version']).toBe(version.toString());
      counts[want || 'ACCEPTED'] = (counts[want || 'ACCEPTED'] ?? 0) + 1;
    }
    // Every kind of answer was exercised.
    expect(Object.keys(counts).sort()).toEqual(['ACCEPTED', 'INVALID_UPDATE', 'SEQUENCE_GAP', 'STALE_VERSION']);
    expect(await w.update({ taskId, attempt: 1, status: 'COMPLETED', version: (version + 1n).toString() }, nextSeq.toString())).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED' });
  });
});
