import { context, createTraceState, isSpanContextValid, ROOT_CONTEXT, trace, TraceFlags, type Context, type Span, type SpanContext } from '@opentelemetry/api';

/**
 * W3C trace context on a task (`traceparent`, `tracestate`): written from
 * a span by the producer, read back into a parent context by the
 * dispatcher and the worker. Uses only @opentelemetry/api, so the SDK
 * carries no OpenTelemetry SDK: without a registered tracer provider every
 * span is a no-op and nothing is sent.
 *
 * Parsing is written here rather than taken from @opentelemetry/core's
 * W3CTraceContextPropagator so the client needs the API package alone; the
 * format is four fixed-width hex fields.
 */
export interface TraceCarrier {
  traceparent: string;
  tracestate: string;
}

/** version-traceid-spanid-flags, lower-case hex, version not ff; a version-00 traceparent has nothing after the flags. */
const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(?:$|-)/;

export const NO_TRACE: TraceCarrier = Object.freeze({ traceparent: '', tracestate: '' });

/** The carrier of a span's context; empty when the context is not valid (no tracer provider, no parent). */
export function carrierOf(span: Span): TraceCarrier {
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return NO_TRACE;
  const flags = (sc.traceFlags & 0xff).toString(16).padStart(2, '0');
  return { traceparent: `00-${sc.traceId}-${sc.spanId}-${flags}`, tracestate: sc.traceState?.serialize() ?? '' };
}

/** The remote span context a carrier names, or undefined when it names none. */
export function spanContextOf(carrier: TraceCarrier): SpanContext | undefined {
  const tp = carrier.traceparent;
  if (!TRACEPARENT.test(tp)) return undefined;
  const traceId = tp.slice(3, 35);
  const spanId = tp.slice(36, 52);
  const flags = Number.parseInt(tp.slice(53, 55), 16);
  if (!Number.isFinite(flags)) return undefined;
  const sc: SpanContext = { traceId, spanId, traceFlags: flags & TraceFlags.SAMPLED, isRemote: true };
  if (carrier.tracestate !== '') sc.traceState = createTraceState(carrier.tracestate);
  return isSpanContextValid(sc) ? sc : undefined;
}

/** A context whose parent is the carrier's span (or `base` when it names none). */
export function contextFrom(carrier: TraceCarrier, base: Context = ROOT_CONTEXT): Context {
  const sc = spanContextOf(carrier);
  return sc === undefined ? base : trace.setSpanContext(base, sc);
}

export { context };
