import type { EngineEvent, EngineObserver } from '../core/task-events';
import { BoundedLabels, MAX_ZONE_LABELS } from './bounded-labels';
import type { LatencyMatrix } from './latency-matrix';

/**
 * Feeds the latency matrix from the engine's events: the dispatch latency
 * of each first attempt (submit to a worker holding it), by producer zone
 * and by dispatcher zone, and every heartbeat round trip.
 */
export class HeatmapObserver implements EngineObserver {
  private readonly zones = new BoundedLabels(MAX_ZONE_LABELS);

  constructor(private readonly matrix: LatencyMatrix) {}

  onEvents(events: readonly EngineEvent[]): void {
    for (const e of events) {
      if (e.kind === 'started' && e.attempt === 1) {
        const ms = Math.max(0, e.atMs - e.createdMs);
        const worker = this.zones.value(e.workerZone);
        this.matrix.record('dispatch.producer', this.zones.value(e.producerZone), worker, ms, e.atMs);
        this.matrix.record('dispatch.dispatcher', this.zones.value(e.dispatcherZone), worker, ms, e.atMs);
      } else if (e.kind === 'rtt') {
        this.matrix.record('rtt', this.zones.value(e.dispatcherZone), this.zones.value(e.workerZone), e.rttMs, e.atMs);
      }
    }
  }
}
