import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { killAll, spawnZonal, type Proc } from '../support/processes';

const HANDLER = path.resolve(__dirname, 'fixtures', 'tagging-handler.js');

function serve(dataDir: string, grpcAddress: string): Proc {
  return spawnZonal(['serve', '--data-dir', dataDir, '--grpc-address', grpcAddress, '--admin-address', '', '--heartbeat-min-interval-ms', '500', '--heartbeat-max-interval-ms', '500', '--base-idle-ms', '1500']);
}

function worker(target: string, id: string): Proc {
  return spawnZonal(['worker', '--target', target, '--slots', '32', '--handler', HANDLER, '--worker-id', id], { ZONAL_WORKER_ID: id });
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

describe('dispatcher killed with SIGKILL under load', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-crash-'));
  const producers: ProducerClient[] = [];

  afterAll(async () => {
    for (const p of producers) p.close();
    await killAll();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('loses no acknowledged task, and every one of them finishes after the restart', async () => {
    const first = serve(dataDir, '127.0.0.1:0');
    const listening = await first.waitForEvent('listening');
    const target = String(listening['grpcAddress']);
    const workers = [worker(target, 'wa'), worker(target, 'wb')];
    await Promise.all(workers.map((w) => w.waitForEvent('worker-running')));

    // Three producers submit as fast as they can; only acknowledged ids count.
    const acked: string[] = [];
    let stopSubmitting = false;
    for (let i = 0; i < 3; i++) {
      producers.push(new ProducerClient({ target, call: { maxAttempts: 1, callTimeoutMs: 2_000 } }));
    }
    const loops = producers.map(async (producer, p) => {
      let n = 0;
      while (!stopSubmitting) {
        const batch = Array.from({ length: 50 }, () => producer.submit({ payload: `${p}-${n++}` }).then((r) => acked.push(r.taskId), () => undefined));
        await Promise.all(batch);
      }
    });
    // Kill once a few thousand tasks were acknowledged, while submits are still in flight.
    while (acked.length < 3_000) await new Promise((resolve) => setTimeout(resolve, 5));
    const killedAt = acked.length;
    await first.kill('SIGKILL');
    stopSubmitting = true;
    await Promise.all(loops);
    const ackedBeforeRestart = [...acked];
    expect(ackedBeforeRestart.length).toBeGreaterThanOrEqual(killedAt);

    // Restart on the same data and address; workers reconnect by themselves.
    const second = serve(dataDir, target);
    const relisten = await second.waitForEvent('listening');
    expect(relisten['grpcAddress']).toBe(target);

    const checker = new ProducerClient({ target, call: { maxAttempts: 10 } });
    producers.push(checker);
    await checker.ready({ deadlineMs: 10_000 });
    const outcomes = await mapLimit(ackedBeforeRestart, 64, async (id) => {
      const result = await checker.result(id, { timeoutMs: 60_000 });
      return result.toString();
    });
    // Every acknowledged task exists and COMPLETED (at-least-once), with a result from a worker.
    expect(outcomes.length).toBe(ackedBeforeRestart.length);
    for (const text of outcomes) expect(text).toMatch(/^w[ab]:\d+:\d+-\d+$/);
    const rerun = outcomes.filter((t) => !t.includes(':1:')).length;
    console.log(`acknowledged before SIGKILL: ${ackedBeforeRestart.length}; all completed after restart; ${rerun} re-ran as a later attempt`);

    await Promise.all(workers.map((w) => w.kill('SIGTERM')));
    const exit = await second.kill('SIGTERM');
    expect(exit.code).toBe(0);
  });
});
