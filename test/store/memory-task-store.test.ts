import { describe, expect, it } from 'vitest';
import { MemoryTaskStore } from '../support/memory-task-store';
import { describeTaskStoreContract, taskRecord } from './task-store.contract';

describeTaskStoreContract('MemoryTaskStore', async () => new MemoryTaskStore());

describe('MemoryTaskStore', () => {
  it('failNextCommits(n) rejects the next n commits without writing, then recovers', async () => {
    const store = new MemoryTaskStore();
    await store.open();
    store.failNextCommits(2);
    await expect(store.commit([taskRecord('a', { idempotencyKey: 'k' })], 1_000)).rejects.toThrow(/outage/);
    await expect(store.commit([taskRecord('a')], 1_000)).rejects.toThrow(/outage/);
    expect(await store.get('a')).toBeUndefined();
    expect(await store.findByIdempotencyKey('k', 0)).toBeUndefined();
    await store.commit([taskRecord('a')], 1_000);
    expect((await store.get('a'))?.id).toBe('a');
    await store.close();
  });
});
