import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { Worker } from '../../src/client/worker';
import { eventually, startHarness, type Harness } from '../support/server-harness';

/**
 * One trace from producer to dispatcher to worker, over real gRPC: the
 * producer's submit span, the dispatcher's queued/assigned/completed spans
 * and the worker's execute span share one trace id, through the trace
 * context carried on the task. Spans are caught by an in-memory exporter.
 */
describe('tracing: one trace across producer, dispatcher and worker', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager();
  let harness: Harness;
  let producer: ProducerClient;
  let worker: Worker;
  let innerTraceId = '';

  beforeAll(async () => {
    context.setGlobalContextManager(contextManager.enable());
    trace.setGlobalTracerProvider(provider);
    harness = await startHarness({ zone: 'a', tracing: 'on' });
    worker = new Worker({
      target: harness.target,
      zone: 'b',
      slots: 2,
      handler: () => {
        // The handler runs inside the worker's span: the application's own spans join the trace.
        const span = trace.getTracer('app').startSpan('app.work');
        innerTraceId = span.spanContext().traceId;
        span.end();
        return 'done';
      },
    });
    await worker.start();
    producer = new ProducerClient({ target: harness.target, zone: 'c' });
  });

  afterAll(async () => {
    producer?.close();
    await worker?.close({ graceMs: 100 });
    await harness?.cleanup();
    await provider.shutdown();
    trace.disable();
    context.disable();
  });

  it('the submit, queued, assigned, execute and completed spans share the producer trace id, with zones and the task id', async () => {
    const root = trace.getTracer('app').startSpan('app.request');
    const { taskId } = await context.with(trace.setSpan(context.active(), root), () => producer.submit({ payload: 'x' }));
    root.end();
    expect((await producer.result(taskId, { timeoutMs: 10_000 })).toString()).toBe('done');
    await eventually(() => exporter.getFinishedSpans().some((s) => s.name === 'zonal.completed'), 10_000, 'the completed span');

    const spans = exporter.getFinishedSpans();
    const byName = new Map(spans.map((s) => [s.name, s]));
    const traceId = root.spanContext().traceId;
    for (const name of ['zonal.submit', 'zonal.queued', 'zonal.assigned', 'zonal.execute', 'zonal.completed', 'app.work']) {
      expect(byName.get(name), `${name} among ${spans.map((s) => s.name).join(', ')}`).toBeDefined();
      expect(byName.get(name)!.spanContext().traceId, name).toBe(traceId);
    }
    expect(innerTraceId).toBe(traceId);
    const submit = byName.get('zonal.submit')!;
    // The producer's span is a child of the application's; the others hang under the producer's span.
    expect(submit.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    for (const name of ['zonal.queued', 'zonal.assigned', 'zonal.execute', 'zonal.completed']) expect(byName.get(name)!.parentSpanContext?.spanId, name).toBe(submit.spanContext().spanId);
    expect(byName.get('app.work')!.parentSpanContext?.spanId).toBe(byName.get('zonal.execute')!.spanContext().spanId);
    expect(submit.attributes['zonal.task_id']).toBe(taskId);
    expect(byName.get('zonal.assigned')!.attributes).toMatchObject({ 'zonal.task_id': taskId, 'zonal.producer_zone': 'c', 'zonal.dispatcher_zone': 'a', 'zonal.worker_zone': 'b', 'zonal.attempt': 1 });
    expect(byName.get('zonal.completed')!.attributes['zonal.outcome']).toBe('COMPLETED');
    // Times follow the task: queued ends no later than the execute span starts.
    const ms = (t: [number, number]): number => t[0] * 1000 + t[1] / 1e6;
    expect(ms(byName.get('zonal.queued')!.endTime)).toBeLessThanOrEqual(ms(byName.get('zonal.execute')!.startTime) + 1);
  });

  it('a task submitted outside any trace still gets one, started by the producer span', async () => {
    exporter.reset();
    const { taskId } = await producer.submit({ payload: 'y' });
    await producer.result(taskId, { timeoutMs: 10_000 });
    await eventually(() => exporter.getFinishedSpans().some((s) => s.name === 'zonal.completed'), 10_000, 'the completed span');
    const spans = exporter.getFinishedSpans().filter((s) => s.name.startsWith('zonal.'));
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
    expect(spans.find((s) => s.name === 'zonal.submit')!.parentSpanContext).toBeUndefined();
  });
});
