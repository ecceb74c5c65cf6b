/**
 * What one WatchTask subscriber is sent: each newer state once, and the
 * final state always, whatever its version, then the end, once.
 */
import { describe, expect, it } from 'vitest';
import type { TaskRecord } from '../../src/core/task-fields';
import type { TaskState } from '../../src/core/task-state';
import { untilTerminal, WatchRegistry } from '../../src/server/watch-registry';

function record(state: TaskState, version: number): TaskRecord {
  return { id: 't', state, version } as TaskRecord;
}

function subscriber(): { seen: string[]; ends: number; deliver: (r: TaskRecord) => void } {
  const out = { seen: [] as string[], ends: 0, deliver: (_: TaskRecord) => undefined as void };
  out.deliver = untilTerminal(
    (r) => out.seen.push(`${r.state}@${r.version}`),
    () => (out.ends += 1),
  );
  return out;
}

describe('a WatchTask subscriber', () => {
  it('gets each newer state once, skipping repeats and older ones', () => {
    const s = subscriber();
    for (const r of [record('PENDING', 1), record('ASSIGNED', 2), record('ASSIGNED', 2), record('PENDING', 1), record('RUNNING', 3)]) s.deliver(r);
    expect(s.seen).toEqual(['PENDING@1', 'ASSIGNED@2', 'RUNNING@3']);
    expect(s.ends).toBe(0);
  });

  it('gets the terminal state even when its version is not newer, then ends once and takes nothing more', () => {
    const s = subscriber();
    s.deliver(record('RUNNING', 7));
    s.deliver(record('FAILED', 7));
    s.deliver(record('FAILED', 7));
    s.deliver(record('COMPLETED', 9));
    expect(s.seen).toEqual(['RUNNING@7', 'FAILED@7']);
    expect(s.ends).toBe(1);
  });

  it('ends at once when the first state it sees is terminal', () => {
    const s = subscriber();
    s.deliver(record('CANCELLED', 4));
    expect(s.seen).toEqual(['CANCELLED@4']);
    expect(s.ends).toBe(1);
  });
});

describe('the watch registry', () => {
  it('reports a listener that throws and still notifies the others', () => {
    const errors: unknown[] = [];
    const registry = new WatchRegistry((err) => errors.push(err));
    const heard: string[] = [];
    registry.add('t', () => {
      throw new Error('listener exploded');
    });
    registry.add('t', (r) => heard.push(`${r.state}@${r.version}`));
    registry.notify([record('RUNNING', 3)]);
    expect(heard).toEqual(['RUNNING@3']);
    expect(errors).toMatchObject([{ message: 'listener exploded' }]);
  });
});
