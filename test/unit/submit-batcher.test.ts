import { afterEach, describe, expect, it, vi } from 'vitest';
import { SubmitBatcher } from '../../src/client/submit-batcher';
import type { WireSubmitRequest, WireSubmitResult } from '../../src/protocol/wire';

type Send = (requests: Partial<WireSubmitRequest>[]) => Promise<{ results: WireSubmitResult[]; servedBy: string }>;

/** A send that records every batch and answers each task with an id made from its queue. */
function recordingSend(): { send: Send; batches: string[][] } {
  const batches: string[][] = [];
  const send: Send = (requests) => {
    batches.push(requests.map((r) => r.queue ?? ''));
    return Promise.resolve({ results: requests.map((r) => ({ taskId: `id-${r.queue}`, deduplicated: false, error: null }) as unknown as WireSubmitResult), servedBy: 'z/d' });
  };
  return { send, batches };
}

describe('SubmitBatcher', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends the submits of one event-loop turn as one batch when lingerMs is 0, without waiting for a timer', async () => {
    vi.useFakeTimers();
    const { send, batches } = recordingSend();
    const batcher = new SubmitBatcher({ maxTasks: 256, lingerMs: 0 }, send);
    const outcomes = Promise.all(['a', 'b', 'c'].map((queue) => batcher.submit({ queue })));
    expect(batches).toEqual([]);
    // Only the end of the turn (setImmediate), no time passing.
    vi.advanceTimersToNextTimer();
    expect(batches).toEqual([['a', 'b', 'c']]);
    expect((await outcomes).map((o) => o.taskId)).toEqual(['id-a', 'id-b', 'id-c']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('waits lingerMs for more submits when asked to', async () => {
    vi.useFakeTimers();
    const { send, batches } = recordingSend();
    const batcher = new SubmitBatcher({ maxTasks: 256, lingerMs: 5 }, send);
    void batcher.submit({ queue: 'a' });
    vi.advanceTimersByTime(4);
    void batcher.submit({ queue: 'b' });
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(batches).toEqual([['a', 'b']]);
  });

  it('sends a full batch at once and keeps the rest for the next one', () => {
    vi.useFakeTimers();
    const { send, batches } = recordingSend();
    const batcher = new SubmitBatcher({ maxTasks: 2, lingerMs: 0 }, send);
    for (const queue of ['a', 'b', 'c']) void batcher.submit({ queue });
    expect(batches).toEqual([['a', 'b']]);
    vi.advanceTimersToNextTimer();
    expect(batches).toEqual([['a', 'b'], ['c']]);
  });

  it('rejects what is not sent yet on close, and sends nothing after', async () => {
    vi.useFakeTimers();
    const { send, batches } = recordingSend();
    const batcher = new SubmitBatcher({ maxTasks: 256, lingerMs: 0 }, send);
    const pending = batcher.submit({ queue: 'a' });
    batcher.close(new Error('closed'));
    await expect(pending).rejects.toThrow('closed');
    vi.runAllTimers();
    expect(batches).toEqual([]);
  });
});
