import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { killAll, spawnZonal, type Proc } from '../support/processes';

function serve(dataDir: string): Proc {
  return spawnZonal(['serve', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0', '--admin-address', '']);
}

describe('a second dispatcher on a data dir in use (issue 8, section 2)', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-lock-e2e-'));
  const producers: ProducerClient[] = [];

  afterAll(async () => {
    for (const p of producers) p.close();
    await killAll();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('exits non-zero naming the holder, and a restart after kill -9 of the holder starts at once', async () => {
    const first = serve(dataDir);
    const listening = await first.waitForEvent('listening');
    const firstPid = Number(listening['pid']);
    const producer = new ProducerClient({ target: String(listening['grpcAddress']) });
    producers.push(producer);
    const { taskId } = await producer.submit({ payload: 'only once' });

    // The overlap: the second one must not start, so no worker of its can get the task.
    const second = serve(dataDir);
    // Whichever comes first: before the lock, the second one started listening.
    const outcome = await Promise.race([second.exited.then((exit) => exit), second.waitForEvent('listening').then(() => 'listening' as const, () => second.exited)]);
    expect(outcome).toEqual({ code: 1, signal: null });
    const message = second.stderr.join('\n');
    expect(message).toContain('DATA_DIR_IN_USE');
    expect(message).toContain(`data dir ${dataDir} is in use by pid ${firstPid} on host ${hostname()}`);

    // The first one is unaffected.
    expect((await producer.get(taskId)).state).toBe('PENDING');

    // kill -9 leaves the holder's name behind, but the kernel drops the lock with the process.
    await first.kill('SIGKILL');
    const third = serve(dataDir);
    const relisten = await third.waitForEvent('listening');
    const checker = new ProducerClient({ target: String(relisten['grpcAddress']) });
    producers.push(checker);
    expect((await checker.get(taskId)).state).toBe('PENDING');
    expect((await third.kill('SIGTERM')).code).toBe(0);
  });
});
