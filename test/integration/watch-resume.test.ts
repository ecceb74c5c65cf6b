import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import type { TaskInfo } from '../../src/client/task-info';
import { Worker } from '../../src/client/worker';
import { startHarness, type Harness } from '../support/server-harness';

/**
 * watch() outlives its dispatcher: the dispatcher is stopped while a
 * producer watches a task, and started again on the same address and data
 * dir; the watch opens again by itself and goes on to the terminal state,
 * without repeating a state it already gave.
 */
describe('ProducerClient.watch() after its dispatcher went away', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-watch-resume-'));
  let harness: Harness | undefined;
  let producer: ProducerClient | undefined;
  let worker: Worker | undefined;

  afterAll(async () => {
    producer?.close();
    await worker?.close({ graceMs: 100 });
    await harness?.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('opens again after UNAVAILABLE and yields each state once, up to COMPLETED', async () => {
    harness = await startHarness({ dataDir });
    const address = harness.target;
    producer = new ProducerClient({ target: address, call: { backoff: { initialMs: 50, multiplier: 1.5, maxMs: 300, jitter: 0 } } });
    const { taskId } = await producer.submit({ payload: 'later' });
    const seen: TaskInfo[] = [];
    const watching = (async () => {
      for await (const info of producer!.watch(taskId, { timeoutMs: 30_000 })) {
        seen.push(info);
        if (seen.length === 1) {
          // The dispatcher goes away under the open watch, then comes back on the same address and store.
          await harness!.server.stop();
          harness = await startHarness({ dataDir, grpcAddress: address });
          worker = new Worker({ target: address, slots: 1, handler: () => 'done' });
          await worker.start();
        }
      }
    })();
    await watching;
    expect(seen[0]!.state).toBe('PENDING');
    expect(seen.at(-1)).toMatchObject({ state: 'COMPLETED' });
    expect(seen.at(-1)!.result!.toString()).toBe('done');
    const versions = seen.map((s) => s.version);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    expect(new Set(versions).size).toBe(versions.length);
  });
});
