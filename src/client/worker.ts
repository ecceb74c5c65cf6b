import { UPDATE_LIMITS } from '../core/update-rules';
import { context, SpanKind, SpanStatusCode, trace as otelTrace } from '@opentelemetry/api';
import { contextFrom } from '../telemetry/trace-context';
import { bootstrapZone } from './bootstrap-zone';
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff';
import { errorInfo, Status, ZonalError } from '../errors';
import type { Http2KeepaliveConfig } from '../core/http2-keepalive';
import { createLogger } from '../log';
import type { Outgoing, WireAssignment, WireDispatcherMessage, WireWelcome, WireWorkerMessage } from '../protocol/wire';
import { deadlineIn } from './call-policy';
import { createDispatcherClient, waitForReady, warmCodec, type ClientSecurityOptions } from './channel';
import { WorkerConnection, type SettledUpdate } from './worker-connection';

const log = createLogger('worker');
/** A ProxyTracer: spans are no-ops until the application registers a tracer provider. */
const tracer = otelTrace.getTracer('zonal-worker');

/** A task as a handler sees it. */
export interface WorkerTask {
  taskId: string;
  attempt: number;
  maxAttempts: number;
  payload: Buffer;
  contentType: string;
  queue: string;
  labels: Record<string, string>;
  /** The attempt must finish before this instant (ms since the epoch). */
  deadlineMs: number;
}

export interface TaskContext {
  /** Fires when the task is cancelled, its attempt times out, or the stream is lost. */
  signal: AbortSignal;
  /** Reports progress, 0..1 (sent as permille). */
  progress(fraction: number): void;
}

/** Returns the result (bytes or text) or throws to fail the attempt. */
export type TaskHandler = (task: WorkerTask, ctx: TaskContext) => Promise<Uint8Array | string | void> | Uint8Array | string | void;

/** Throw this from a handler to fail the task without further attempts. */
export class NonRetryableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonRetryableError';
  }
}

export interface WorkerOptions {
  target: string;
  handler: TaskHandler;
  /** Most tasks run at once. */
  slots?: number;
  queues?: string[];
  workerId?: string;
  /** This worker's zone (in Hello). Default: the xDS bootstrap's node.locality.zone for an xds: target, else ''. */
  zone?: string;
  labels?: Record<string, string>;
  reconnectBackoff?: BackoffPolicy;
  channelOptions?: grpc.ChannelOptions;
  /** TLS (and mutual TLS) to the dispatcher; plaintext when absent (docs/security.md). */
  tls?: ClientSecurityOptions['tls'];
  /** Bearer token of this client's identity in the dispatcher's access policy. */
  token?: ClientSecurityOptions['token'];
  /** HTTP/2 PING settings; validated against the server's ping policy (see http2-keepalive.ts). */
  http2Keepalive?: Partial<Http2KeepaliveConfig>;
  /** Called each time a dispatcher welcomes this worker (first connect, reconnects, moves). */
  onConnected?: (info: { sessionId: string; dispatcherId: string; dispatcherZone: string }) => void;
  /**
   * Called when the dispatcher answers a task's final update: ACCEPTED means
   * this result is the task's; REJECTED (FENCED, TERMINAL) means the attempt
   * had been taken away (timed out, cancelled, or re-queued after its
   * dispatcher died) and another attempt's result counts instead.
   */
  onSettled?: (info: SettledUpdate) => void;
}

/**
 * Lifecycle of a Worker:
 * - INITIALIZED: constructed; `start()` not called.
 * - CONNECTING: opening a stream (also between reconnects).
 * - RUNNING: welcomed; receiving tasks.
 * - DRAINING: `close()` called; finishing in-flight tasks, taking no new ones.
 * - STOPPED: stream closed, timers cleared.
 */
export type WorkerLifecycle = 'INITIALIZED' | 'CONNECTING' | 'RUNNING' | 'DRAINING' | 'STOPPED';

/**
 * What the probes sent while one worker stream was silent found: each probe
 * is a cheap call (GetTask of PROBE_TASK_ID) the channel's balancer places
 * like a new stream, compared by peer with the stream's dispatcher.
 */
export interface ProbeTally {
  /** The stream's own dispatcher answered a probe: it is alive. */
  oursAnswered: boolean;
  /** Probes the balancer sent to the stream's dispatcher that got no answer in time. */
  oursUnanswered: number;
  /** Probes another dispatcher answered. */
  othersAnswered: number;
}

/** Probes answered elsewhere, with none sent to ours, that show the balancer no longer picks ours (round robin would have). */
export const OTHERS_ANSWERED_TO_LEAVE = 3;
/** Probes in flight at once for one silent stream. */
const MAX_PROBES_IN_FLIGHT = 2;
/** The task id probes ask for; no task has it, so any answer (NOT_FOUND, INVALID_ARGUMENT) means "a dispatcher answered". */
export const PROBE_TASK_ID = 'zonal-liveness-probe';

/**
 * Whether a worker leaves its silent dispatcher now: only when a new stream
 * would be served elsewhere (another dispatcher answered a probe) and ours
 * has not shown it is alive; and either ours left a probe unanswered (it is
 * hung) or the balancer stopped picking it (xDS marked it unhealthy). Pure.
 */
export function shouldLeaveSilentDispatcher(t: ProbeTally): boolean {
  return !t.oursAnswered && t.othersAnswered >= 1 && (t.oursUnanswered >= 1 || t.othersAnswered >= OTHERS_ANSWERED_TO_LEAVE);
}

interface ProbeEpisode {
  connection: WorkerConnection;
  /** The stream's last arrival when the episode began: anything newer ends it. */
  sinceReceivedMs: number;
  tally: ProbeTally;
  inFlight: number;
}

interface InFlight {
  attempt: number;
  version: number;
  controller: AbortController;
  connection: WorkerConnection;
  cancelReason: string;
}

/**
 * Runs tasks from a dispatcher over one bidirectional stream, reconnecting
 * with backoff and jitter. Concurrency is `slots`.
 *
 * ```ts
 * const worker = new Worker({ target: '127.0.0.1:50051', slots: 8, handler: async (task) => task.payload });
 * await worker.start();
 * process.on('SIGTERM', () => void worker.close());
 * ```
 */
export class Worker {
  readonly workerId: string;
  private readonly client: grpc.Client;
  private readonly slots: number;
  private readonly reconnectBackoff: BackoffPolicy;
  private readonly zone: string;
  private state: WorkerLifecycle = 'INITIALIZED';
  private connection: WorkerConnection | undefined;
  private welcome: WireWelcome | undefined;
  private readonly inFlight = new Map<string, InFlight>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Set when the dispatcher sent GoAway on the current stream: its clean end is a move, not a failure. */
  private movingReason = '';
  /** The stream given up because its dispatcher went silent and another answers: reconnect at once. */
  private abandoned: WorkerConnection | undefined;
  private probing: ProbeEpisode | undefined;
  private closing: Promise<void> | undefined;
  private readonly waiters = new Set<() => void>();
  /** Counters for tests and operators. */
  readonly stats = { completed: 0, failed: 0, aborted: 0, rejectedAcks: 0, connects: 0, moves: 0 };

  constructor(private readonly options: WorkerOptions) {
    this.zone = options.zone ?? bootstrapZone(options.target);
    this.workerId = options.workerId ?? `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.slots = options.slots ?? 4;
    this.reconnectBackoff = options.reconnectBackoff ?? { initialMs: 100, multiplier: 2, maxMs: 5_000, jitter: 0.5 };
    this.client = createDispatcherClient(options.target, options.channelOptions, options.http2Keepalive, { ...(options.tls !== undefined ? { tls: options.tls } : {}), ...(options.token !== undefined ? { token: options.token } : {}) });
  }

  get lifecycle(): WorkerLifecycle {
    return this.state;
  }

  get sessionId(): string | undefined {
    return this.welcome?.sessionId;
  }

  /** Heartbeat interval and idle timeout the dispatcher announced, and the RTT this side measured. */
  get keepalive(): { intervalMs: number; idleTimeoutMs: number; srttMs: number; pingsSent: number } | undefined {
    const c = this.connection;
    return c === undefined ? undefined : { ...c.keepalive, srttMs: c.rtt.srttMs, pingsSent: c.pingsSent };
  }

  /** Zone of the dispatcher this worker's stream is connected to (undefined while not connected). */
  get dispatcherZone(): string | undefined {
    return this.welcome?.dispatcherZone;
  }

  get runningTasks(): number {
    return this.inFlight.size;
  }

  /** Connects and waits for the channel to be READY. */
  ready(options: { deadlineMs?: number } = {}): Promise<void> {
    return waitForReady(this.client, options.deadlineMs ?? 10_000);
  }

  /** Opens the stream; resolves once the dispatcher has welcomed this worker. */
  async start(options: { deadlineMs?: number } = {}): Promise<void> {
    if (this.state !== 'INITIALIZED') throw new ZonalError('INTERNAL', `start() called twice (worker is ${this.state})`);
    warmConnectCodec();
    this.connect();
    try {
      await this.waitFor(() => this.state === 'RUNNING', options.deadlineMs ?? 10_000, 'the dispatcher did not welcome the worker in time');
    } catch (err) {
      // Say why, when the dispatcher said: a refused token or grant is not a slow network.
      if (this.lastStreamError !== undefined) throw new ZonalError('DEADLINE_EXCEEDED', `the dispatcher did not welcome the worker in time; its last stream ended with: ${this.lastStreamError}`, { cause: err });
      throw err;
    }
  }

  /**
   * Drains: sends Drain, lets in-flight tasks finish for up to `graceMs`
   * (the dispatcher's drain grace by default), then closes the stream.
   */
  close(options: { graceMs?: number } = {}): Promise<void> {
    this.closing ??= this.drainAndStop(options.graceMs);
    return this.closing;
  }

  private async drainAndStop(graceMs: number | undefined): Promise<void> {
    const wasRunning = this.state === 'RUNNING';
    this.setState('DRAINING');
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const connection = this.connection;
    if (connection !== undefined && wasRunning) {
      connection.send({ kind: 'drain', drain: { reason: 'worker closing' } });
      const limitMs = graceMs ?? this.welcome?.drainGraceMs ?? 5_000;
      await this.waitFor(() => this.inFlight.size === 0 || this.connection === undefined, limitMs, '').catch(() => undefined);
    }
    for (const flight of this.inFlight.values()) flight.controller.abort(new Error('worker closed'));
    const current = this.connection;
    if (current !== undefined) {
      current.endWrites();
      await this.waitFor(() => this.connection === undefined, 1_000, '').catch(() => current.cancel());
    }
    this.setState('STOPPED');
    this.client.close();
  }

  private setState(next: WorkerLifecycle): void {
    if (this.state === next) return;
    log.debug('lifecycle', { workerId: this.workerId, from: this.state, to: next });
    this.state = next;
    this.notify();
  }

  private waitFor(condition: () => boolean, timeoutMs: number, message: string): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!condition()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new ZonalError('DEADLINE_EXCEEDED', message || 'timed out'));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  private notify(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private connect(): void {
    this.setState('CONNECTING');
    this.stats.connects += 1;
    const call = (this.client as unknown as { Connect(): grpc.ClientDuplexStream<Outgoing<WireWorkerMessage>, WireDispatcherMessage> }).Connect();
    const connection: WorkerConnection = new WorkerConnection(call, {
      welcome: (welcome) => {
        this.welcome = welcome;
        this.failures = 0;
        if (this.state === 'CONNECTING') this.setState('RUNNING');
        this.options.onConnected?.({ sessionId: welcome.sessionId, dispatcherId: welcome.dispatcherId, dispatcherZone: welcome.dispatcherZone });
      },
      assignments: (assignments) => {
        for (const assignment of assignments) this.run(connection, assignment);
      },
      cancel: (taskId, attempt, reason) => {
        const flight = this.inFlight.get(taskId);
        if (flight === undefined || flight.attempt !== attempt) return;
        flight.cancelReason = reason;
        flight.controller.abort(new ZonalError(reason === 'ATTEMPT_TIMEOUT' ? 'ATTEMPT_TIMEOUT' : 'CANCELLED', `the dispatcher took the attempt away (${reason})`));
      },
      acks: (acks) => {
        for (const ack of acks) {
          if (ack.result !== 'REJECTED') continue;
          this.stats.rejectedAcks += 1;
          log.debug('update rejected', { taskId: ack.taskId, reason: ack.reason, message: ack.message });
        }
      },
      settled: (info) => this.options.onSettled?.(info),
      goAway: (reason) => {
        // The dispatcher drains this session; once it ends the stream we reconnect at once.
        log.info('dispatcher asked this worker to move', { workerId: this.workerId, reason });
        this.movingReason = reason;
        this.stats.moves += 1;
      },
      silent: () => this.probeSilentDispatcher(connection),
      closed: (error) => this.onClosed(connection, error),
    });
    this.connection = connection;
    connection.send({
      kind: 'hello',
      hello: {
        workerId: this.workerId,
        zone: this.zone,
        labels: this.options.labels ?? {},
        slots: this.slots,
        queues: this.options.queues ?? [],
      },
    });
  }

  /**
   * The stream is silent longer than a heartbeat round trip: asks the
   * channel's balancer where a new stream would go now. With xDS, the control
   * plane marks a hung dispatcher UNHEALTHY within its health window and the
   * balancer stops picking it; the worker then moves at once, as producers
   * do, instead of waiting out the idle timeout (5 s and more).
   */
  private probeSilentDispatcher(connection: WorkerConnection): void {
    if (this.connection !== connection || this.state !== 'RUNNING') return;
    if (this.probing?.connection !== connection || this.probing.sinceReceivedMs !== connection.lastReceivedAtMs) {
      this.probing = { connection, sinceReceivedMs: connection.lastReceivedAtMs, tally: { oursAnswered: false, oursUnanswered: 0, othersAnswered: 0 }, inFlight: 0 };
    }
    const episode = this.probing;
    if (episode.inFlight >= MAX_PROBES_IN_FLIGHT) return;
    episode.inFlight += 1;
    const ours = connection.peer;
    const timeoutMs = Math.max(250, connection.keepalive.intervalMs);
    type GetTask = (req: { taskId: string }, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => grpc.ClientUnaryCall;
    const getTask = (this.client as unknown as { GetTask: GetTask }).GetTask.bind(this.client);
    const call = getTask({ taskId: PROBE_TASK_ID }, { deadline: deadlineIn(timeoutMs) }, (error) => {
      episode.inFlight -= 1;
      if (this.probing !== episode || this.connection !== connection || connection.lastReceivedAtMs !== episode.sinceReceivedMs) return;
      const answered = error === null || ![Status.DEADLINE_EXCEEDED, Status.UNAVAILABLE, Status.CANCELLED].includes(error.code);
      const peer = call.getPeer();
      if (peer === ours) {
        if (answered) episode.tally.oursAnswered = true;
        else episode.tally.oursUnanswered += 1;
      } else if (answered) episode.tally.othersAnswered += 1;
      if (!shouldLeaveSilentDispatcher(episode.tally)) return;
      log.info('the dispatcher is silent and the balancer now sends new calls elsewhere; moving', { workerId: this.workerId, dispatcher: ours, answeredBy: peer, silentMs: Date.now() - connection.lastReceivedAtMs });
      this.abandoned = connection;
      this.stats.moves += 1;
      connection.cancel();
    });
  }

  /** The details of the last stream that ended with an error status (start() reports it when it times out). */
  private lastStreamError: string | undefined;

  private onClosed(connection: WorkerConnection, error: grpc.ServiceError | undefined): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    this.probing = undefined;
    this.welcome = undefined;
    // The dispatcher re-queues every attempt of a lost stream; finishing them here would be rejected.
    for (const [taskId, flight] of this.inFlight) {
      if (flight.connection !== connection) continue;
      flight.controller.abort(new ZonalError('LEASE_LOST', 'the stream to the dispatcher was lost'));
      this.inFlight.delete(taskId);
      this.stats.aborted += 1;
    }
    this.notify();
    if (this.state === 'DRAINING' || this.state === 'STOPPED') return;
    // A GoAway move, or a silent dispatcher left for one that answers: reconnect at once, not a failure.
    const moving = (this.movingReason !== '' && error === undefined) || this.abandoned === connection;
    this.movingReason = '';
    this.abandoned = undefined;
    const calmDown = error?.code === Status.RESOURCE_EXHAUSTED;
    if (calmDown) {
      // RST_STREAM ENHANCE_YOUR_CALM (or a memory limit): back off harder before trying again.
      log.warn('the dispatcher or a proxy asked this worker to calm down (ENHANCE_YOUR_CALM); backing off', { workerId: this.workerId, details: error?.details });
    }
    const refused = error?.code === Status.UNAUTHENTICATED || error?.code === Status.PERMISSION_DENIED;
    if (refused) {
      // Retrying helps only once the dispatcher's access policy changes (it reloads): say so loudly, and back off hard.
      log.warn("the dispatcher's access policy refused this worker; retrying with backoff (fix the token, certificate or grants)", { workerId: this.workerId, details: error?.details });
    }
    if (error !== undefined) this.lastStreamError = error.details;
    if (!moving) this.failures += calmDown || refused ? 3 : 1;
    const delayMs = moving ? 0 : backoffDelayMs(this.reconnectBackoff, this.failures, Math.random);
    log.info('stream closed; reconnecting', { workerId: this.workerId, code: error?.code, details: error?.details, delayMs });
    this.setState('CONNECTING');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.state === 'CONNECTING') this.connect();
    }, delayMs);
  }

  private run(connection: WorkerConnection, assignment: WireAssignment): void {
    const flight: InFlight = { attempt: assignment.attempt, version: assignment.version, controller: new AbortController(), connection, cancelReason: '' };
    this.inFlight.set(assignment.taskId, flight);
    const base = { taskId: assignment.taskId, attempt: assignment.attempt, result: Buffer.alloc(0), error: null };
    const report = (status: 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED', extra: { progressPermille?: number; result?: Buffer; error?: ReturnType<typeof errorInfo> | null } = {}): void => {
      if (this.inFlight.get(assignment.taskId) !== flight) return;
      flight.version += 1;
      connection.update({ ...base, status, version: flight.version, progressPermille: extra.progressPermille ?? 0, result: extra.result ?? base.result, error: extra.error ?? null });
    };
    report('RUNNING');
    const task: WorkerTask = {
      taskId: assignment.taskId,
      attempt: assignment.attempt,
      maxAttempts: assignment.maxAttempts,
      payload: assignment.payload,
      contentType: assignment.contentType,
      queue: assignment.queue,
      labels: assignment.labels,
      deadlineMs: assignment.deadlineUnixMs,
    };
    const ctx: TaskContext = {
      signal: flight.controller.signal,
      progress: (fraction) => report('RUNNING', { progressPermille: Math.round(Math.min(1, Math.max(0, fraction)) * 1000) }),
    };
    // The producer's trace continues here: the handler runs inside a `zonal.execute` span.
    const span = tracer.startSpan(
      'zonal.execute',
      { kind: SpanKind.CONSUMER, attributes: { 'zonal.task_id': task.taskId, 'zonal.attempt': task.attempt, 'zonal.queue': task.queue, 'zonal.worker_zone': this.zone } },
      contextFrom({ traceparent: assignment.traceparent, tracestate: assignment.tracestate }, context.active()),
    );
    const finish = (status: 'COMPLETED' | 'FAILED' | 'CANCELLED', extra: Parameters<typeof report>[1]): void => {
      if (span.isRecording()) {
        span.setAttribute('zonal.outcome', status);
        if (status !== 'COMPLETED') span.setStatus({ code: SpanStatusCode.ERROR, message: extra?.error?.message ?? status });
        span.end();
      }
      report(status, extra);
      if (this.inFlight.get(assignment.taskId) === flight) this.inFlight.delete(assignment.taskId);
      this.notify();
    };
    Promise.resolve()
      .then(() => (span.isRecording() ? context.with(otelTrace.setSpan(context.active(), span), () => this.options.handler(task, ctx)) : this.options.handler(task, ctx)))
      .then(
        (result) => {
          if (flight.cancelReason !== '') {
            finish('CANCELLED', {});
            return;
          }
          const bytes = typeof result === 'string' ? Buffer.from(result, 'utf8') : result ? Buffer.from(result) : Buffer.alloc(0);
          if (bytes.byteLength > UPDATE_LIMITS.maxResultBytes) {
            // The dispatcher would refuse it; the task fails for good with a reason the producer can read.
            this.stats.failed += 1;
            finish('FAILED', { error: { ...errorInfo('HANDLER_FAILED', `the handler returned ${bytes.byteLength} bytes; a result holds at most ${UPDATE_LIMITS.maxResultBytes}: store it elsewhere and return a reference`), retryable: false } });
            return;
          }
          this.stats.completed += 1;
          finish('COMPLETED', { result: bytes });
        },
        (err: unknown) => {
          if (flight.cancelReason !== '') {
            finish('CANCELLED', {});
            return;
          }
          this.stats.failed += 1;
          // The dispatcher keeps at most maxErrorMessageChars of it.
          const message = (err instanceof Error ? err.message : String(err)).slice(0, UPDATE_LIMITS.maxErrorMessageChars);
          const error = { ...errorInfo('HANDLER_FAILED', message), retryable: !(err instanceof NonRetryableError) };
          finish('FAILED', { error });
        },
      );
  }
}

/**
 * Generates the Connect stream's protobufjs codecs before the first task
 * rather than inside it: an assignment and an ack decoded, an update with an
 * error encoded (every nested type the first task's path uses). In a fresh
 * worker process they were part of the first task's submit -> start
 * (bench/suite/warmup.ts); see `warmCodec`.
 */
function warmConnectCodec(): void {
  const update = { taskId: 'warm-up', attempt: 1, status: 'FAILED', sequenceId: 1, version: 1, progressPermille: 0, result: Buffer.from('w'), error: { code: 2, reason: 'HANDLER_FAILED', message: 'w', retryable: true } };
  const assignment = {
    taskId: 'warm-up',
    attempt: 1,
    version: 1,
    deadlineUnixMs: 1,
    payload: Buffer.from('w'),
    contentType: '',
    queue: 'warm-up',
    labels: { warm: 'up' },
    maxAttempts: 1,
    producerZone: '',
    traceparent: '',
    tracestate: '',
  };
  const ack = { sequenceId: 1, taskId: 'warm-up', result: 'ACCEPTED', reason: '', message: '', state: 'COMPLETED', version: 2 };
  try {
    warmCodec('Connect', [{ updates: { updates: [update] } }], [{ assignments: { assignments: [assignment] } }, { acks: { acks: [ack] } }]);
  } catch (err) {
    // Only a warm-up: the real messages are encoded and checked on the stream.
    log.debug('warming the Connect codec failed', { error: err instanceof Error ? err.message : String(err) });
  }
}
