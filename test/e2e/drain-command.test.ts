import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { killAll, spawnZonal, type Proc } from '../support/processes';

/**
 * `zonal drain --data-dir D` is what the Kubernetes manifests run as the
 * dispatcher's preStop hook: it drains the dispatcher holding D and returns
 * only once it is done, so the kubelet's SIGTERM that follows finds nothing
 * left to do.
 */
describe('zonal drain', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'zonal-drain-'));

  afterAll(async () => {
    await killAll();
    rmSync(root, { recursive: true, force: true });
  });

  async function serve(name: string): Promise<{ proc: Proc; grpc: string; admin: string; dataDir: string }> {
    const dataDir = path.join(root, name);
    const proc = spawnZonal(['serve', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--xds-address', 'off', '--drain-grace-ms', '10000']);
    const listening = await proc.waitForEvent('listening');
    return { proc, grpc: String(listening['grpcAddress']), admin: String(listening['adminAddress']), dataDir };
  }

  async function heldTasks(admin: string): Promise<number> {
    return Number(((await (await fetch(`http://${admin}/readyz`)).json()) as Record<string, unknown>)['heldTasks']);
  }

  /** A dispatcher whose one worker is running a 1.5 s task; `submit` printed the task's id. */
  async function busy(name: string): Promise<{ d: Awaited<ReturnType<typeof serve>>; worker: Proc; submit: Proc }> {
    const d = await serve(name);
    const worker = spawnZonal(['worker', '--target', d.grpc, '--slots', '1', '--sleep-ms', '1500']);
    await worker.waitForEvent('worker-running');
    const submit = spawnZonal(['submit', '--target', d.grpc, '--payload', 'slow']);
    for (let i = 0; (await heldTasks(d.admin)) === 0; i += 1) {
      if (i > 400) throw new Error('the task never reached the worker');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return { d, worker, submit };
  }

  /**
   * What the store holds for the task once the drained dispatcher is gone: a
   * dispatcher started again on the same data dir answers.
   */
  async function afterRestart(dataDir: string, submit: Proc): Promise<{ state: string; attempt: number }> {
    expect((await submit.exited).code).toBe(0);
    const taskId = String(submit.events.find((e) => 'taskId' in e)?.['taskId']);
    const again = spawnZonal(['serve', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0', '--admin-address', 'off', '--xds-address', 'off']);
    const client = new ProducerClient({ target: String((await again.waitForEvent('listening'))['grpcAddress']) });
    try {
      const task = await client.get(taskId);
      return { state: task.state, attempt: task.attempt };
    } finally {
      client.close();
      await again.kill('SIGTERM');
    }
  }

  it('returns once the dispatcher has finished its in-flight task and exited; the task completes', async () => {
    const { d, worker, submit } = await busy('busy');
    const drainStartedMs = Date.now();
    const drain = spawnZonal(['drain', '--data-dir', d.dataDir]);
    const draining = await drain.waitForEvent('draining');
    expect(draining['pid']).toBe(d.proc.child.pid);
    const drained = await drain.waitForEvent('drained', 15_000);
    expect((await drain.exited).code).toBe(0);
    const drainMs = Date.now() - drainStartedMs;
    expect(d.proc.events.some((e) => e['event'] === 'stopping')).toBe(true);
    expect(await d.proc.exited).toEqual({ code: 0, signal: null });
    // The task was running when the drain began: it completed there, on its first attempt (no re-run needed).
    expect(await afterRestart(d.dataDir, submit)).toEqual({ state: 'COMPLETED', attempt: 1 });
    console.log(`zonal drain: returned ${drainMs} ms after it started (reported ${String(drained['ms'])} ms from its SIGTERM), with one 1.5 s task in flight; the task COMPLETED`);
    await worker.kill('SIGTERM');
  }, 60_000);

  it('a second SIGTERM while draining (the kubelet after a preStop) does not cut the drain short', async () => {
    const { d, worker, submit } = await busy('twice');
    d.proc.child.kill('SIGTERM');
    await d.proc.waitForEvent('stopping');
    d.proc.child.kill('SIGTERM');
    await d.proc.waitForEvent('already-stopping');
    expect(await d.proc.exited).toEqual({ code: 0, signal: null });
    expect(await afterRestart(d.dataDir, submit)).toEqual({ state: 'COMPLETED', attempt: 1 });
    await worker.kill('SIGTERM');
  }, 60_000);

  it('a data dir no dispatcher holds is nothing to drain', async () => {
    const drain = spawnZonal(['drain', '--data-dir', path.join(root, 'nobody')]);
    const drained = await drain.waitForEvent('drained');
    expect(drained['pid']).toBeNull();
    expect((await drain.exited).code).toBe(0);
  }, 15_000);
});
