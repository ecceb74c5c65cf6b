import { SpanKind, SpanStatusCode, trace, type Attributes, type Tracer } from '@opentelemetry/api';
import type { EngineEvent, EngineObserver, TaskEvent } from '../core/task-events';
import { contextFrom } from './trace-context';

/**
 * The dispatcher's spans, made from the engine's events into the trace the
 * producer started (the task's traceparent). Each span is written after the
 * fact with the engine's own times:
 * - `zonal.queued`: submit to the first assignment (attempt 1), or a retry
 *   to its next assignment is not tracked: queued covers the first wait;
 * - `zonal.assigned`: an attempt handed to a worker, until the worker's
 *   first update (the assignment's round trip);
 * - `zonal.completed`: the task's terminal state (COMPLETED, FAILED or
 *   CANCELLED), a zero-length span with the outcome;
 * - `zonal.retried`: an attempt ended and the task will run again.
 * Tasks without a traceparent make no spans. Only attached when tracing is on.
 */
export class TracingObserver implements EngineObserver {
  private readonly tracer: Tracer;

  constructor(tracer?: Tracer) {
    this.tracer = tracer ?? trace.getTracer('zonal-dispatcher');
  }

  onEvents(events: readonly EngineEvent[]): void {
    for (const e of events) {
      if (e.kind === 'updateRefused' || e.kind === 'rtt' || e.kind === 'sessionEnded' || e.traceparent === '') continue;
      switch (e.kind) {
        case 'assigned':
          if (e.attempt === 1) this.span('zonal.queued', e, e.createdMs, e.atMs, SpanKind.INTERNAL);
          break;
        case 'started':
          this.span('zonal.assigned', e, e.assignedMs, e.atMs, SpanKind.PRODUCER);
          break;
        case 'retried':
          this.span('zonal.retried', e, e.atMs, e.atMs, SpanKind.INTERNAL, { 'zonal.reason': e.reason }, true);
          break;
        case 'finished':
          this.span('zonal.completed', e, e.atMs, e.atMs, SpanKind.INTERNAL, { 'zonal.outcome': e.outcome, 'zonal.reason': e.reason }, e.outcome !== 'COMPLETED');
          break;
        default:
          break;
      }
    }
  }

  private span(name: string, e: TaskEvent, startMs: number, endMs: number, kind: SpanKind, extra: Attributes = {}, error = false): void {
    const parent = contextFrom(e);
    const span = this.tracer.startSpan(
      name,
      {
        kind,
        startTime: startMs,
        attributes: {
          'zonal.task_id': e.taskId,
          'zonal.queue': e.queue,
          'zonal.attempt': e.attempt,
          'zonal.producer_zone': e.producerZone,
          'zonal.dispatcher_zone': e.dispatcherZone,
          'zonal.worker_zone': e.workerZone,
          ...extra,
        },
      },
      parent,
    );
    if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: String(extra['zonal.reason'] ?? '') });
    span.end(Math.max(startMs, endMs));
  }
}
