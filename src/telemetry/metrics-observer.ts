import * as client from 'prom-client';
import type { EngineEvent, EngineObserver } from '../core/task-events';
import { BoundedLabels, MAX_QUEUE_LABELS, MAX_ZONE_LABELS } from './bounded-labels';
import { LATENCY_BUCKETS_SECONDS } from './latency-buckets';
import { METRICS, type MetricDefinition } from './metric-names';

const LIFETIME_BUCKETS_SECONDS = [1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

/**
 * The Prometheus adapter of the engine's events: task counters by queue and
 * zone, the latency histograms by zone pair, refused updates by reason,
 * stream RTT and lifetime. Labels are bounded (bounded-labels.ts).
 */
export class MetricsObserver implements EngineObserver {
  private readonly zones = new BoundedLabels(MAX_ZONE_LABELS);
  private readonly queues = new BoundedLabels(MAX_QUEUE_LABELS);
  private readonly submitted: client.Counter;
  private readonly completed: client.Counter;
  private readonly failed: client.Counter;
  private readonly retried: client.Counter;
  private readonly cancelled: client.Counter;
  private readonly dispatch: client.Histogram;
  private readonly completion: client.Histogram;
  private readonly rtt: client.Histogram;
  private readonly lifetime: client.Histogram;
  private readonly refused: client.Counter;

  constructor(registry: client.Registry) {
    const counter = (def: MetricDefinition): client.Counter => new client.Counter({ name: def.name, help: def.help, labelNames: [...def.labelNames], registers: [registry] });
    const histogram = (def: MetricDefinition, buckets: readonly number[]): client.Histogram =>
      new client.Histogram({ name: def.name, help: def.help, labelNames: [...def.labelNames], buckets: [...buckets], registers: [registry] });
    this.submitted = counter(METRICS.tasksSubmitted);
    this.completed = counter(METRICS.tasksCompleted);
    this.failed = counter(METRICS.tasksFailed);
    this.retried = counter(METRICS.tasksRetried);
    this.cancelled = counter(METRICS.tasksCancelled);
    this.refused = counter(METRICS.updatesRefused);
    this.dispatch = histogram(METRICS.dispatchLatency, LATENCY_BUCKETS_SECONDS);
    this.completion = histogram(METRICS.completionLatency, LATENCY_BUCKETS_SECONDS);
    this.rtt = histogram(METRICS.streamRtt, LATENCY_BUCKETS_SECONDS);
    this.lifetime = histogram(METRICS.streamLifetime, LIFETIME_BUCKETS_SECONDS);
  }

  onEvents(events: readonly EngineEvent[]): void {
    for (const e of events) {
      switch (e.kind) {
        case 'submitted':
          this.submitted.inc({ queue: this.queues.value(e.queue), zone: this.zones.value(e.producerZone) });
          break;
        case 'started':
          if (e.attempt === 1) this.dispatch.observe(this.pair(e), Math.max(0, e.atMs - e.createdMs) / 1000);
          break;
        case 'finished': {
          const labels = { queue: this.queues.value(e.queue), zone: this.zones.value(e.workerZone) };
          if (e.outcome === 'COMPLETED') {
            this.completed.inc(labels);
            this.completion.observe(this.pair(e), Math.max(0, e.atMs - e.createdMs) / 1000);
          } else if (e.outcome === 'FAILED') this.failed.inc(labels);
          else this.cancelled.inc(labels);
          break;
        }
        case 'retried':
          this.retried.inc({ queue: this.queues.value(e.queue), zone: this.zones.value(e.workerZone) });
          break;
        case 'updateRefused':
          this.refused.inc({ reason: e.reason });
          break;
        case 'rtt':
          this.rtt.observe({ dispatcher_zone: this.zones.value(e.dispatcherZone), worker_zone: this.zones.value(e.workerZone) }, e.rttMs / 1000);
          break;
        case 'sessionEnded':
          this.lifetime.observe({ worker_zone: this.zones.value(e.workerZone), cause: e.cause }, e.lifetimeMs / 1000);
          break;
        default:
          break;
      }
    }
  }

  private pair(e: { producerZone: string; dispatcherZone: string; workerZone: string }): Record<string, string> {
    return { producer_zone: this.zones.value(e.producerZone), dispatcher_zone: this.zones.value(e.dispatcherZone), worker_zone: this.zones.value(e.workerZone) };
  }
}
