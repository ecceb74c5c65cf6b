import type { EngineEvent, EngineObserver } from '../core/task-events';
import type { LatencyMatrix } from './latency-matrix';

/**
 * Feeds the latency matrix from the engine's events: the dispatch latency
 * of each first attempt (submit to a worker holding it), by producer zone
 * and by dispatcher zone, and every heartbeat round trip. The matrix
 * bounds the zones (one budget for its own samples and shared ones).
 */
export class HeatmapObserver implements EngineObserver {
  constructor(private readonly matrix: LatencyMatrix) {}

  onEvents(events: readonly EngineEvent[]): void {
    for (const e of events) {
      if (e.kind === 'started' && e.attempt === 1) {
        const ms = Math.max(0, e.atMs - e.createdMs);
        this.matrix.record('dispatch.producer', e.producerZone, e.workerZone, ms, e.atMs);
        this.matrix.record('dispatch.dispatcher', e.dispatcherZone, e.workerZone, ms, e.atMs);
      } else if (e.kind === 'rtt') {
        this.matrix.record('rtt', e.dispatcherZone, e.workerZone, e.rttMs, e.atMs);
      }
    }
  }
}
