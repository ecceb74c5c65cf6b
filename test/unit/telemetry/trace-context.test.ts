import { createTraceState, ROOT_CONTEXT, trace, TraceFlags, type SpanContext } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { carrierOf, contextFrom, NO_TRACE, spanContextOf } from '../../../src/telemetry/trace-context';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;

function span(overrides: Partial<SpanContext> = {}): ReturnType<typeof trace.wrapSpanContext> {
  return trace.wrapSpanContext({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED, ...overrides });
}

describe('carrierOf', () => {
  it('writes a W3C traceparent from a span\'s context', () => {
    expect(carrierOf(span())).toEqual({ traceparent: TRACEPARENT, tracestate: '' });
    expect(carrierOf(span({ traceFlags: TraceFlags.NONE })).traceparent).toBe(`00-${TRACE_ID}-${SPAN_ID}-00`);
  });

  it('carries the tracestate', () => {
    expect(carrierOf(span({ traceState: createTraceState('vendor=abc,other=x:y') }))).toEqual({ traceparent: TRACEPARENT, tracestate: 'vendor=abc,other=x:y' });
  });

  it('is empty for a span context that is not valid (no tracer provider, zero ids)', () => {
    expect(carrierOf(trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: SPAN_ID, traceFlags: 1 }))).toEqual(NO_TRACE);
    expect(carrierOf(trace.wrapSpanContext({ traceId: TRACE_ID, spanId: '0'.repeat(16), traceFlags: 1 }))).toEqual(NO_TRACE);
    expect(carrierOf(trace.getTracer('test').startSpan('no provider'))).toEqual(NO_TRACE);
    expect(NO_TRACE).toEqual({ traceparent: '', tracestate: '' });
    expect(Object.isFrozen(NO_TRACE)).toBe(true);
  });
});

describe('spanContextOf', () => {
  it('reads back the span context a carrier was written from (round trip)', () => {
    const carrier = carrierOf(span({ traceState: createTraceState('vendor=abc,other=x') }));
    const sc = spanContextOf(carrier)!;
    expect(sc).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED, isRemote: true });
    expect(sc.traceState?.serialize()).toBe('vendor=abc,other=x');
    expect(sc.traceState?.get('vendor')).toBe('abc');
    expect(carrierOf(trace.wrapSpanContext(sc))).toEqual(carrier);
  });

  it('has no traceState for an empty tracestate', () => {
    const sc = spanContextOf({ traceparent: TRACEPARENT, tracestate: '' })!;
    expect(sc.traceState).toBeUndefined();
    expect(sc.traceFlags).toBe(TraceFlags.SAMPLED);
  });

  it('keeps only the sampled flag', () => {
    expect(spanContextOf({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-00`, tracestate: '' })!.traceFlags).toBe(TraceFlags.NONE);
    expect(spanContextOf({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-03`, tracestate: '' })!.traceFlags).toBe(TraceFlags.SAMPLED);
    expect(spanContextOf({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-fe`, tracestate: '' })!.traceFlags).toBe(TraceFlags.NONE);
  });

  it('is undefined for the empty carrier', () => {
    expect(spanContextOf(NO_TRACE)).toBeUndefined();
  });

  it('is undefined for zero trace or span ids', () => {
    expect(spanContextOf({ traceparent: `00-${'0'.repeat(32)}-${SPAN_ID}-01`, tracestate: '' })).toBeUndefined();
    expect(spanContextOf({ traceparent: `00-${TRACE_ID}-${'0'.repeat(16)}-01`, tracestate: '' })).toBeUndefined();
  });

  it('is undefined for a malformed traceparent', () => {
    const bad = [
      TRACEPARENT.slice(0, 54), // too short
      `00_${TRACE_ID}-${SPAN_ID}-01`, // separators
      `00-${TRACE_ID}_${SPAN_ID}-01`,
      `00-${TRACE_ID}-${SPAN_ID}_01`,
      `00-${TRACE_ID.slice(0, 31)}z-${SPAN_ID}-01`, // not hex
      `00-${TRACE_ID}-${SPAN_ID.slice(0, 15)}g-01`,
      `00-${TRACE_ID}-${SPAN_ID}-zz`, // flags not hex
      `00-${TRACE_ID}-${SPAN_ID}`, // no flags
      'garbage',
    ];
    for (const traceparent of bad) expect(spanContextOf({ traceparent, tracestate: 'vendor=abc' }), traceparent).toBeUndefined();
  });
});

describe('contextFrom', () => {
  it('a context whose span is the carrier\'s', () => {
    const ctx = contextFrom({ traceparent: TRACEPARENT, tracestate: '' });
    expect(trace.getSpanContext(ctx)).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, isRemote: true });
  });

  it('the base context when the carrier names no span', () => {
    expect(contextFrom(NO_TRACE)).toBe(ROOT_CONTEXT);
    const base = ROOT_CONTEXT.setValue(Symbol('k'), 1);
    expect(contextFrom({ traceparent: 'nonsense', tracestate: '' }, base)).toBe(base);
  });
});
