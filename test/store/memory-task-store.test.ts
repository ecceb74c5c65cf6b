import { describe, expect, it } from 'vitest';
import { MemoryTaskStore } from '../support/memory-task-store';
import { describeTaskStoreContract, taskRecord } from './task-store.contract';

describeTaskStoreContract('MemoryTaskStore', async () => new MemoryTaskStore());

describe('MemoryTaskStore', () => {
  it('failNextCommits(n) rejects the next n commits without writing, then recovers', async () => {
    const store = new MemoryTaskStore();
    await store.open();
    const batch = { nowMs: 0, owner: 'o#1', dispatcherZone: '', leaseExpiresMs: 0, spilloverDelayMs: 0, idempotencyRetentionMs: 1_000, inserts: [taskRecord('a', { idempotencyKey: 'k' })], writes: [], claims: [] };
    store.failNextCommits(2);
    await expect(store.commit(batch)).rejects.toThrow(/outage/);
    await expect(store.commit(batch)).rejects.toThrow(/outage/);
    expect(await store.get('a')).toBeUndefined();
    await store.commit(batch);
    expect((await store.get('a'))?.id).toBe('a');
    await store.close();
  });
});
