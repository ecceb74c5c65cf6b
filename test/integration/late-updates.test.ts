/**
 * A late update for a task that finished before the dispatcher restarted:
 * docs/protocol.md promises `REJECTED TERMINAL` with the task's final state
 * and version (the store is asked), not `NOT_HELD` with the state unknown.
 * Acks stay in the order of the updates while the store is asked.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startHarness } from '../support/server-harness';
import { getTask, RawWorker, Resources, submit, type Msg } from './raw-peer';

const res = new Resources();
let dataDir = '';
afterEach(async () => {
  await res.release();
  if (dataDir !== '') rmSync(dataDir, { recursive: true, force: true });
  dataDir = '';
});

describe('late updates for tasks that finished before a restart', () => {
  it('get TERMINAL with the final state and version; unknown tasks still get NOT_HELD; acks keep their order', async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-late-'));
    const first = await startHarness({ dataDir });
    const client1 = res.client(first.target);
    const w1 = await RawWorker.connect(res, client1, { workerId: 'before', slots: 1, queues: ['q'] });
    const done = await submit(client1, { queue: 'q' });
    const a = await w1.assignment();
    const final = a['version'] + 1;
    expect(await w1.update({ taskId: done, attempt: 1, status: 'COMPLETED', version: final, result: Buffer.from('r') })).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED' });
    w1.close();
    await first.server.stop();

    const second = await startHarness({ dataDir });
    res.harness = second;
    const client = res.client(second.target);
    const w = await RawWorker.connect(res, client, { workerId: 'late', slots: 1, queues: ['q'] });

    // One message: a late update for the finished task, one for a task that never existed, and a resend of the first.
    w.send({
      updates: {
        updates: [
          { taskId: done, attempt: 1, status: 'COMPLETED', version: final + 1, sequenceId: 1 },
          { taskId: 'no-such-task', attempt: 1, status: 'RUNNING', version: 2, sequenceId: 2 },
          { taskId: done, attempt: 1, status: 'COMPLETED', version: final + 1, sequenceId: 1 },
        ],
      },
    });
    // A second message right behind it: its acks must not overtake the first message's.
    w.send({ updates: { updates: [{ taskId: done, attempt: 1, status: 'FAILED', version: final + 2, sequenceId: 3 }] } });
    const firstAcks = (await w.take('acks'))['acks'] as Msg[];
    const secondAcks = (await w.take('acks'))['acks'] as Msg[];
    expect(firstAcks).toHaveLength(3);
    expect(firstAcks[0]).toMatchObject({ sequenceId: 1, taskId: done, result: 'REJECTED', reason: 'TERMINAL', state: 'COMPLETED', version: final });
    expect(firstAcks[0]!['message']).toContain(`version ${final} is locked`);
    expect(firstAcks[1]).toMatchObject({ sequenceId: 2, taskId: 'no-such-task', result: 'REJECTED', reason: 'NOT_HELD', state: 'TASK_STATE_UNSPECIFIED', version: 0 });
    // The resend gets the same answer as the original.
    expect(firstAcks[2]).toEqual(firstAcks[0]);
    expect(secondAcks).toMatchObject([{ sequenceId: 3, taskId: done, result: 'REJECTED', reason: 'TERMINAL', state: 'COMPLETED', version: final }]);

    // Nothing changed the task.
    expect(await getTask(client, done)).toMatchObject({ state: 'COMPLETED', version: final, result: Buffer.from('r') });
  });
});
