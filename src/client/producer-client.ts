import { context, SpanKind, SpanStatusCode, trace as otelTrace } from '@opentelemetry/api';
import { carrierOf, NO_TRACE, type TraceCarrier } from '../telemetry/trace-context';
import { bootstrapZone } from './bootstrap-zone';
import { newIdempotencyKey } from '../ids';
import type * as grpc from '@grpc/grpc-js';
import { Status, TaskFailedError, ZonalError } from '../errors';
import { backoffDelayMs } from '../core/backoff';
import { createLogger } from '../log';
import { fromServiceError } from '../protocol/grpc-errors';
import type { WireSubmitRequest, WireSubmitResult, WireTaskInfo } from '../protocol/wire';
import { Breaker, compileBreakerOptions, type BreakerOptions, type CircuitState } from '../resilience/breaker';
import { reportCircuitState, type ClientMetrics } from '../telemetry/client-metrics';
import { callOnce, callWithRetry, compileCallPolicy, type CallPolicy, type CallPolicyInput } from './call-policy';
import { createDispatcherClient, waitForReady, warmCodec, type ClientSecurityOptions } from './channel';
import type { Http2KeepaliveConfig } from '../core/http2-keepalive';
import { SubmitBatcher, type BatcherOptions, type SubmitOutcomeOut } from './submit-batcher';
import { toTaskInfo, type TaskInfo } from './task-info';
import { isTerminal } from '../core/task-state';
import { RetryBudget } from './retry-budget';

const log = createLogger('producer');

/**
 * Empty `SubmitBatch` calls `ready()` makes after connecting. More than
 * one: V8 compiles a function better only after it has run a few times,
 * and with a single warm-up call the second submit was still about as slow
 * as the first (bench/suite/warmup.ts). Each is one round trip (well under
 * 1 ms on loopback) that submits nothing.
 */
const WARM_UP_CALLS = 3;
const WARM_UP_DEADLINE_MS = 1_000;

/** A ProxyTracer: spans are no-ops until the application registers a tracer provider. */
const tracer = otelTrace.getTracer('zonal-producer');

export interface SubmitOptions {
  payload?: Uint8Array | string;
  contentType?: string;
  queue?: string;
  priority?: number;
  /** Generated when omitted, so SDK retries never create a duplicate. */
  idempotencyKey?: string;
  maxAttempts?: number;
  attemptTimeoutMs?: number;
  scheduleToStartTimeoutMs?: number;
  /** Not started before this instant (Date or ms since the epoch). */
  notBefore?: Date | number;
  labels?: Record<string, string>;
  preferredZone?: string;
  /** The producer's zone for this task; defaults to the client's `zone`. */
  producerZone?: string;
}

export interface ProducerClientOptions {
  /** `xds:///zonal` (with an xDS bootstrap), `dns:///host:port` or `host:port`. */
  target: string;
  /** Deadlines, retries and the retry budget of unary calls. */
  call?: CallPolicyInput;
  /** The circuit breaker to `target`, which guards every unary call attempt. */
  breaker?: Partial<BreakerOptions>;
  batch?: Partial<BatcherOptions>;
  channelOptions?: grpc.ChannelOptions;
  /** TLS (and mutual TLS) to the dispatcher; plaintext when absent (docs/security.md). */
  tls?: ClientSecurityOptions['tls'];
  /** Bearer token of this client's identity in the dispatcher's access policy. */
  token?: ClientSecurityOptions['token'];
  /** HTTP/2 PING settings; validated against the server's ping policy (see http2-keepalive.ts). */
  http2Keepalive?: Partial<Http2KeepaliveConfig>;
  /** Where to report metrics (the circuit state); nothing is reported without it. */
  metrics?: ClientMetrics;
  /**
   * This producer's zone, recorded on every task it submits (latency by
   * zone pair). Default: the xDS bootstrap's node.locality.zone for an
   * xds: target, else ''.
   */
  zone?: string;
}

type Method = (req: unknown, options: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => grpc.ClientUnaryCall;

/**
 * Submits tasks and follows them.
 *
 * ```ts
 * const producer = new ProducerClient({ target: '127.0.0.1:50051' });
 * const { taskId } = await producer.submit({ payload: 'hello', queue: 'default' });
 * const result = await producer.result(taskId);
 * producer.close();
 * ```
 *
 * Every unary call (SubmitBatch, GetTask, CancelTask) has a deadline per
 * attempt; retryable failures are retried with backoff inside the client's
 * retry budget; each attempt goes through the circuit breaker to the target,
 * which fails fast with CIRCUIT_OPEN (never retried) while the target is down.
 */
export class ProducerClient {
  private readonly client: grpc.Client;
  private policy: CallPolicy;
  private readonly batcher: SubmitBatcher;
  private readonly budget: RetryBudget;
  private readonly breaker: Breaker;
  private readonly stopReporting: () => void;
  private readonly zone: string;
  private closed = false;

  constructor(options: ProducerClientOptions) {
    this.policy = compileCallPolicy(options.call);
    const breakerOptions = compileBreakerOptions(options.breaker);
    this.client = createDispatcherClient(options.target, options.channelOptions, options.http2Keepalive, { ...(options.tls !== undefined ? { tls: options.tls } : {}), ...(options.token !== undefined ? { token: options.token } : {}) });
    this.budget = new RetryBudget(this.policy.retryBudget);
    this.breaker = new Breaker(options.target, breakerOptions);
    this.breaker.onStateChange((state, previous) => {
      if (state === 'OPEN' && previous === 'CLOSED') log.warn('circuit to the dispatcher opened; calls fail fast', { target: options.target, probeAtMs: this.breaker.probeAtMs() });
      else if (state === 'CLOSED') log.info('circuit to the dispatcher closed again', { target: options.target });
    });
    this.stopReporting = reportCircuitState(this.breaker, options.metrics?.circuitState, { target: options.target });
    this.zone = options.zone ?? bootstrapZone(options.target);
    this.batcher = new SubmitBatcher({ maxTasks: 256, lingerMs: 0, ...options.batch }, (requests) => this.sendBatch(requests));
  }

  /**
   * New call policy and breaker thresholds while running (a runtime config
   * update, see `followRuntimeConfig`): the next call attempt uses them; the
   * channel, the calls in flight and the breaker's state are kept. The retry
   * budget's size is fixed when the client is made.
   */
  setPolicy(next: { call?: CallPolicy; breaker?: BreakerOptions }): void {
    if (next.call !== undefined) this.policy = { ...next.call, retryBudget: this.policy.retryBudget };
    if (next.breaker !== undefined) this.breaker.setOptions(next.breaker);
  }

  /** The call policy in force. */
  get callPolicy(): CallPolicy {
    return this.policy;
  }

  /**
   * Connects, waits until the channel is READY, then warms the submit path
   * so the first `submit` costs about what the others do.
   *
   * Why the warm-up: in a fresh process a connected channel is not enough.
   * The first call also paid for code that had never run: protobufjs
   * generating the SubmitBatch encoders and decoders (~3 ms), and the first
   * runs of grpc-js's and node:http2's call path, send and receive (~5 ms).
   * Measured: 12-20 ms for the first submit against a 2.5-3.5 ms steady p50
   * (bench/suite/warmup.ts). So `ready()` runs the codec on a representative
   * task and result, then makes a few empty `SubmitBatch` calls (the whole
   * submit path, request to answer, with nothing submitted: the dispatcher
   * answers an empty batch with no results), outside the breaker and the
   * retry budget.
   *
   * The warm-up is best effort: connectivity is what `ready()` promises, so
   * a failure of the warm-up is logged at debug and not thrown.
   */
  async ready(options: { deadlineMs?: number } = {}): Promise<void> {
    const deadlineMs = options.deadlineMs ?? this.policy.callTimeoutMs;
    await waitForReady(this.client, deadlineMs);
    await this.warmUp(deadlineMs);
  }

  private async warmUp(deadlineMs: number): Promise<void> {
    try {
      warmCodec(
        'SubmitBatch',
        [{ tasks: [toRequest({ payload: 'warm-up', labels: { warm: 'up' }, notBefore: 1 }, this.zone, NO_TRACE)] }],
        [{ results: [{ taskId: 'warm-up', deduplicated: false, error: { code: 3, reason: 'INVALID_ARGUMENT', message: 'warm-up', retryable: false } }], servedBy: 'warm/up' }],
      );
      // Through the breaker and the call policy, as a submit goes (their first runs are part of the
      // cold cost), but once each and with a short deadline: a slow dispatcher must not make ready()
      // wait several call timeouts.
      const submitBatch = this.method('SubmitBatch');
      const warmPolicy = { ...this.policy, maxAttempts: 1, callTimeoutMs: Math.min(deadlineMs, WARM_UP_DEADLINE_MS) };
      for (let i = 0; i < WARM_UP_CALLS; i++) await callWithRetry(warmPolicy, () => this.breaker.fire(() => callOnce(submitBatch, { tasks: [] }, warmPolicy.callTimeoutMs)), { budget: this.budget });
    } catch (err) {
      log.debug('the warm-up after ready() failed; the first submit may be slower', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** Submits one task; resolves once it is durable. Concurrent calls share SubmitBatch calls. */
  /**
   * Submits one task. With an OpenTelemetry tracer provider registered, a
   * `zonal.submit` span (a child of the active context) covers the call and
   * its context travels with the task, so the dispatcher's and the
   * worker's spans join the same trace.
   */
  submit(task: SubmitOptions): Promise<SubmitOutcomeOut> {
    if (this.closed) return Promise.reject(new ZonalError('SHUTTING_DOWN', 'the producer client is closed'));
    const span = tracer.startSpan('zonal.submit', { kind: SpanKind.PRODUCER, attributes: { 'zonal.queue': task.queue ?? '' } }, context.active());
    const carrier = carrierOf(span);
    const request = toRequest(task, this.zone, carrier);
    const sent = task.idempotencyKey === undefined ? this.batcher.submit(request).then(ownKey) : this.batcher.submit(request);
    if (!span.isRecording()) return sent;
    return sent.then(
      (out) => {
        span.setAttribute('zonal.task_id', out.taskId);
        span.end();
        return out;
      },
      (err: unknown) => {
        span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
        span.end();
        throw err;
      },
    );
  }

  /** Submits many tasks in one call; one result or error per task. */
  submitMany(tasks: SubmitOptions[]): Promise<SubmitOutcomeOut[]> {
    return Promise.all(tasks.map((t) => this.submit(t)));
  }

  async get(taskId: string): Promise<TaskInfo> {
    return toTaskInfo((await this.unary('GetTask', { taskId })) as WireTaskInfo);
  }

  async cancel(taskId: string, reason = ''): Promise<{ state: string; cancelled: boolean }> {
    return (await this.unary('CancelTask', { taskId, reason })) as { state: string; cancelled: boolean };
  }

  /** State of the circuit breaker to the target (also reported as `zonal_client_circuit_state`). */
  circuitState(): CircuitState {
    return this.breaker.state();
  }

  /**
   * Streams the task's state and every change until it is terminal; the
   * server then ends the stream. A watch that breaks (its dispatcher died,
   * restarted or moved the client away: UNAVAILABLE) is opened again, with
   * the call policy's backoff, until `timeoutMs`: through xds:/// the channel
   * picks another dispatcher, and on a shared store (PostgreSQL) any
   * dispatcher knows the task. A state already yielded (same or older
   * version) is not yielded again.
   */
  async *watch(taskId: string, options: { timeoutMs?: number } = {}): AsyncGenerator<TaskInfo> {
    const deadlineMs = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    let lastVersion = -1;
    for (let retry = 1; ; retry++) {
      try {
        let terminal = false;
        // Read to the end: the dispatcher ends the stream right after the terminal state (no RST_STREAM from us).
        for await (const info of this.watchOnce(taskId, deadlineMs)) {
          if (terminal || info.version <= lastVersion) continue;
          lastVersion = info.version;
          terminal = isTerminal(info.state);
          yield info;
        }
        return;
      } catch (err) {
        if (!(err instanceof ZonalError) || err.code !== Status.UNAVAILABLE || this.closed) throw err;
        const delayMs = backoffDelayMs(this.policy.backoff, retry, Math.random);
        if (Date.now() + delayMs >= deadlineMs) throw err;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  /** One WatchTask stream, as the server sends it. */
  private async *watchOnce(taskId: string, deadlineMs: number): AsyncGenerator<TaskInfo> {
    const call = (this.client as unknown as { WatchTask: (req: unknown, opts: grpc.CallOptions) => grpc.ClientReadableStream<WireTaskInfo> }).WatchTask(
      { taskId },
      { deadline: deadlineMs },
    );
    let finished = false;
    call.on('status', () => (finished = true));
    try {
      for await (const wire of call as AsyncIterable<WireTaskInfo>) yield toTaskInfo(wire);
      finished = true;
    } catch (err) {
      finished = true;
      throw fromServiceError(err as grpc.ServiceError);
    } finally {
      // Cancel only a stream the caller abandoned: each cancel is an HTTP/2
      // RST_STREAM, and servers rate-limit those (a burst gets a GOAWAY).
      if (!finished) call.cancel();
    }
  }

  /**
   * Waits for the task to finish; returns its result or throws
   * TaskFailedError. Follows the task through `watch`, so it outlives its
   * dispatcher as `watch` does.
   */
  async result(taskId: string, options: { timeoutMs?: number } = {}): Promise<Buffer> {
    let last: TaskInfo | undefined;
    for await (const info of this.watch(taskId, options)) last = info;
    if (last === undefined || !isTerminal(last.state)) throw new ZonalError('DEADLINE_EXCEEDED', `task ${taskId} did not finish in time`);
    if (last.state !== 'COMPLETED') throw new TaskFailedError(taskId, last.state, last.error ?? undefined);
    return last.result ?? Buffer.alloc(0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.batcher.flush();
    this.batcher.close(new ZonalError('SHUTTING_DOWN', 'the producer client is closed'));
    this.client.close();
    this.stopReporting();
    this.breaker.close();
  }

  /**
   * The same request on every attempt (so the same idempotency keys), each
   * attempt through the breaker and with a fresh deadline.
   */
  private unary(name: string, request: unknown): Promise<unknown> {
    const method = this.method(name);
    return callWithRetry(this.policy, () => this.breaker.fire(() => callOnce(method, request, this.policy.callTimeoutMs)), { budget: this.budget });
  }

  private async sendBatch(requests: Partial<WireSubmitRequest>[]): Promise<{ results: WireSubmitResult[]; servedBy: string }> {
    return (await this.unary('SubmitBatch', { tasks: requests })) as { results: WireSubmitResult[]; servedBy: string };
  }

  private method(name: string): Method {
    const fn = (this.client as unknown as Record<string, Method>)[name];
    if (fn === undefined) throw new ZonalError('INTERNAL', `the client has no method ${name}`);
    return fn.bind(this.client);
  }
}

/** A key the SDK made is this call's alone: a task found under it is the call's own retried attempt (SubmitOutcomeOut.deduplicated). */
function ownKey(out: SubmitOutcomeOut): SubmitOutcomeOut {
  return out.deduplicated ? { ...out, deduplicated: false } : out;
}

function toRequest(task: SubmitOptions, zone: string, trace: TraceCarrier): Partial<WireSubmitRequest> {
  const payload = typeof task.payload === 'string' ? Buffer.from(task.payload, 'utf8') : task.payload === undefined ? Buffer.alloc(0) : Buffer.from(task.payload);
  const notBefore = task.notBefore instanceof Date ? task.notBefore.getTime() : (task.notBefore ?? 0);
  return {
    payload,
    contentType: task.contentType ?? (typeof task.payload === 'string' ? 'text/plain; charset=utf-8' : ''),
    queue: task.queue ?? '',
    priority: task.priority ?? 0,
    idempotencyKey: task.idempotencyKey ?? newIdempotencyKey(),
    maxAttempts: task.maxAttempts ?? 0,
    attemptTimeoutMs: task.attemptTimeoutMs ?? 0,
    scheduleToStartTimeoutMs: task.scheduleToStartTimeoutMs ?? 0,
    notBeforeUnixMs: notBefore,
    labels: task.labels ?? {},
    preferredZone: task.preferredZone ?? '',
    producerZone: task.producerZone ?? zone,
    traceparent: trace.traceparent,
    tracestate: trace.tracestate,
  };
}
