import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { eventually } from '../support/server-harness';
import { killAll, spawnZonal, type Proc } from '../support/processes';

const HANDLER = path.resolve(__dirname, 'fixtures', 'tagging-handler.js');

function worker(target: string, id: string, sleepMs: number, slots: number): Proc {
  return spawnZonal(['worker', '--target', target, '--slots', String(slots), '--handler', HANDLER, '--worker-id', id], {
    ZONAL_WORKER_ID: id,
    ZONAL_TEST_SLEEP_MS: String(sleepMs),
  });
}

describe('workers killed mid-task', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-wkill-'));
  let producer: ProducerClient | undefined;

  afterAll(async () => {
    producer?.close();
    await killAll();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('re-runs the tasks of SIGKILLed workers on a survivor, and none completes twice', async () => {
    const server = spawnZonal(['serve', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0', '--admin-address', '']);
    const target = String((await server.waitForEvent('listening'))['grpcAddress']);
    // Two workers that hold their tasks for a minute: they will be killed holding them.
    const doomed = [worker(target, 'wa', 60_000, 4), worker(target, 'wb', 60_000, 4)];
    await Promise.all(doomed.map((w) => w.waitForEvent('worker-running')));

    producer = new ProducerClient({ target });
    const ids = (await producer.submitMany(Array.from({ length: 20 }, (_, i) => ({ payload: String(i) })))).map((r) => r.taskId);
    const heldBy = async (workerId: string): Promise<string[]> => {
      const infos = await Promise.all(ids.map((id) => producer!.get(id)));
      return infos.filter((t) => t.workerId === workerId && (t.state === 'RUNNING' || t.state === 'ASSIGNED')).map((t) => t.taskId);
    };
    let held: string[] = [];
    await eventually(async () => {
      held = [...(await heldBy('wa')), ...(await heldBy('wb'))];
      return held.length === 8;
    }, 10_000, 'wa and wb to hold 4 tasks each');

    const survivor = worker(target, 'wc', 5, 4);
    await survivor.waitForEvent('worker-running');
    await Promise.all(doomed.map((w) => w.kill('SIGKILL')));

    const results = await Promise.all(ids.map((id) => producer!.result(id, { timeoutMs: 30_000 })));
    const infos = await Promise.all(ids.map((id) => producer!.get(id)));
    for (const info of infos) expect(info.state).toBe('COMPLETED');
    for (const id of held) {
      const info = infos.find((t) => t.taskId === id)!;
      // The killed attempt 1 never completed; attempt 2 ran on the survivor.
      expect(info.attempt).toBe(2);
      expect(info.result?.toString()).toBe(`wc:2:${ids.indexOf(id)}`);
    }
    for (const [i, text] of results.entries()) {
      expect(text.toString()).toMatch(new RegExp(`^wc:[12]:${i}$`));
    }
    await survivor.kill('SIGTERM');
    expect((await server.kill('SIGTERM')).code).toBe(0);
  });
});
