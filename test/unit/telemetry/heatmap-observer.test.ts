import { describe, expect, it } from 'vitest';
import type { EngineEvent, TaskEvent } from '../../../src/core/task-events';
import { MAX_ZONE_LABELS } from '../../../src/telemetry/bounded-labels';
import { HeatmapObserver } from '../../../src/telemetry/heatmap-observer';
import { LatencyMatrix, SLOT_MS, WINDOWS_MS, type Series } from '../../../src/telemetry/latency-matrix';

const T = 1_700_000_000_000;

function started(extra: Partial<Extract<TaskEvent, { kind: 'started' }>> = {}): TaskEvent {
  return {
    kind: 'started',
    taskId: 't-1',
    queue: 'q',
    attempt: 1,
    atMs: T + 30,
    createdMs: T,
    assignedMs: T + 10,
    producerZone: 'zone-p',
    dispatcherZone: 'zone-d',
    workerZone: 'zone-w',
    traceparent: '',
    tracestate: '',
    ...extra,
  };
}

function pairs(m: LatencyMatrix, series: Series, nowMs = T + SLOT_MS): [string, string, number, number | undefined][] {
  return m.summary(series, WINDOWS_MS['5m'], 0.5, nowMs).map((p) => [p.from, p.to, p.count, p.meanMs]);
}

describe('HeatmapObserver', () => {
  it('records the dispatch latency of attempt 1 by producer zone and by dispatcher zone', () => {
    const m = new LatencyMatrix();
    new HeatmapObserver(m).onEvents([started(), started({ atMs: T + 50 })]);
    expect(pairs(m, 'dispatch.producer')).toEqual([['zone-p', 'zone-w', 2, 40]]);
    expect(pairs(m, 'dispatch.dispatcher')).toEqual([['zone-d', 'zone-w', 2, 40]]);
    expect(pairs(m, 'rtt')).toEqual([]);
  });

  it('records at the time the worker started it (the slot of atMs)', () => {
    const m = new LatencyMatrix();
    new HeatmapObserver(m).onEvents([started({ createdMs: T, atMs: T + 2 * SLOT_MS + 1 })]);
    expect(m.localRows(0).map((r) => r.slotMs)).toEqual([T + 2 * SLOT_MS, T + 2 * SLOT_MS]);
  });

  it('ignores later attempts and other task events', () => {
    const m = new LatencyMatrix();
    const base = started();
    const others: EngineEvent[] = [
      started({ attempt: 2 }),
      { ...base, kind: 'submitted' },
      { ...base, kind: 'assigned' },
      { ...base, kind: 'finished', outcome: 'COMPLETED', reason: '' },
      { ...base, kind: 'retried', reason: 'HANDLER_FAILED' },
      { kind: 'updateRefused', reason: 'FENCED', dispatcherZone: 'zone-d', workerZone: 'zone-w', atMs: T },
      { kind: 'sessionEnded', dispatcherZone: 'zone-d', workerZone: 'zone-w', cause: 'IDLE', lifetimeMs: 1_000, atMs: T },
    ];
    new HeatmapObserver(m).onEvents(others);
    expect(m.localRows(0)).toEqual([]);
  });

  it('counts a negative latency (clock skew) as 0', () => {
    const m = new LatencyMatrix();
    new HeatmapObserver(m).onEvents([started({ createdMs: T + 100, atMs: T })]);
    expect(pairs(m, 'dispatch.producer')).toEqual([['zone-p', 'zone-w', 1, 0]]);
  });

  it('records heartbeat RTT, dispatcher zone -> worker zone', () => {
    const m = new LatencyMatrix();
    new HeatmapObserver(m).onEvents([
      { kind: 'rtt', dispatcherZone: 'zone-d', workerZone: 'zone-w', rttMs: 3, atMs: T },
      { kind: 'rtt', dispatcherZone: 'zone-d', workerZone: 'zone-w', rttMs: 5, atMs: T },
    ]);
    expect(pairs(m, 'rtt')).toEqual([['zone-d', 'zone-w', 2, 4]]);
    expect(pairs(m, 'dispatch.producer')).toEqual([]);
  });

  it(`keeps ${MAX_ZONE_LABELS} distinct zones; later ones are recorded as "other"`, () => {
    const m = new LatencyMatrix();
    const observer = new HeatmapObserver(m);
    // zone-d and zone-w are the first two zones seen; 30 producer zones fill the table.
    observer.onEvents(Array.from({ length: MAX_ZONE_LABELS - 2 }, (_, i) => started({ producerZone: `p-${i}` })));
    observer.onEvents([started({ producerZone: 'late-1' }), started({ producerZone: 'late-2' }), { kind: 'rtt', dispatcherZone: 'zone-d', workerZone: 'late-w', rttMs: 1, atMs: T + 30 }]);
    const producers = new Set(m.summary('dispatch.producer', WINDOWS_MS['5m'], 0.5, T + SLOT_MS).map((p) => p.from));
    expect(producers.size).toBe(MAX_ZONE_LABELS - 2 + 1);
    expect(producers.has('other')).toBe(true);
    expect(producers.has('late-1')).toBe(false);
    expect(m.summary('dispatch.producer', WINDOWS_MS['5m'], 0.5, T + SLOT_MS).find((p) => p.from === 'other')!.count).toBe(2);
    expect(pairs(m, 'rtt')).toEqual([['zone-d', 'other', 1, 1]]);
  });
});
