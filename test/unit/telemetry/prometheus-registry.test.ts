import { describe, expect, it } from 'vitest';
import { createDispatcherRegistry } from '../../../src/telemetry/prometheus';

const stats = () => ({
  sessions: 0,
  tasksInMemory: 0,
  heldTasks: 0,
  heartbeatsSent: 0,
  heartbeatOverBudget: false,
  commits: 0,
  recordsCommitted: 0,
  sessionsClosedByCause: {},
  peers: 0,
  tasksSwept: 0,
  tasksLost: 0,
});

describe('the dispatcher registry', () => {
  it('bounds the ready-depth labels: queues past 200 and zones past 32 add up under "other"', async () => {
    const rows = [
      ...Array.from({ length: 250 }, (_, i) => ({ queue: `q${i}`, zone: 'a', count: 1 })),
      ...Array.from({ length: 40 }, (_, i) => ({ queue: 'q0', zone: `z${i}`, count: 2 })),
    ];
    const { registry } = createDispatcherRegistry({ stats, readyDepth: async () => rows });
    const metric = await registry.getSingleMetric('zonal_queue_ready_tasks')!.get();
    const values = metric.values;
    expect(new Set(values.map((v) => v.labels['queue'])).size).toBeLessThanOrEqual(201);
    expect(new Set(values.map((v) => v.labels['zone'])).size).toBeLessThanOrEqual(33);
    // Nothing is lost: the sum is the store's.
    expect(values.reduce((n, v) => n + v.value, 0)).toBe(250 + 80);
    expect(values.find((v) => v.labels['queue'] === 'other' && v.labels['zone'] === 'a')?.value).toBe(50);
  });

  it('a queue whose backlog is gone reads 0, not nothing (an HPA on a missing series never scales down)', async () => {
    let rows = [{ queue: 'q', zone: 'a', count: 8 }, { queue: 'q', zone: 'b', count: 1 }];
    let now = 1_000_000;
    const realNow = Date.now;
    Date.now = () => now; // the depth is cached 5 s
    try {
      const { registry } = createDispatcherRegistry({ stats, readyDepth: async () => rows });
      const read = async () => Object.fromEntries((await registry.getSingleMetric('zonal_queue_ready_tasks')!.get()).values.map((v) => [`${v.labels['queue']}/${v.labels['zone']}`, v.value]));
      expect(await read()).toEqual({ 'q/a': 8, 'q/b': 1 });
      rows = [{ queue: 'q', zone: 'b', count: 2 }];
      now += 5_000;
      expect(await read()).toEqual({ 'q/a': 0, 'q/b': 2 });
    } finally {
      Date.now = realNow;
    }
  });

  it('default process metrics keep their standard names', async () => {
    const { registry } = createDispatcherRegistry({ stats });
    const text = await registry.metrics();
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_heap_size_used_bytes');
    expect(text).not.toContain('zonal_process_');
  });

  it('a store that cannot answer the ready depth reports nothing that scrape, and is asked again at the next', async () => {
    let calls = 0;
    const { registry } = createDispatcherRegistry({
      stats,
      readyDepth: async () => {
        calls += 1;
        if (calls === 1) throw new Error('store down');
        return [{ queue: 'q', zone: 'a', count: 3 }];
      },
    });
    expect((await registry.getSingleMetric('zonal_queue_ready_tasks')!.get()).values).toEqual([]);
    expect((await registry.getSingleMetric('zonal_queue_ready_tasks')!.get()).values.map((v) => v.value)).toEqual([3]);
  });
});
