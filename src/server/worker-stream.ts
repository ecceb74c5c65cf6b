import type * as grpc from '@grpc/grpc-js';
import { Status, ZonalError } from '../errors';
import type { SessionState, CloseCause, HelloSpec } from '../core/session';
import { NAME_PATTERN } from '../core/task-fields';
import { MAX_SLOTS_PER_SESSION } from '../core/options';
import type { UpdateAckOut } from '../core/update';
import { answeredWithoutTask } from '../core/update-rules';
import { decodeHello, decodeUpdate, encodeAck, u64 } from '../protocol/codec';
import type { Outgoing, WireDispatcherMessage, WireTaskUpdate, WireWorkerMessage } from '../protocol/wire';
import type { Dispatcher, StreamSink } from './dispatcher';

export type WorkerCall = grpc.ServerDuplexStream<WireWorkerMessage, Outgoing<WireDispatcherMessage>>;

/** What the service adds to a stream: the access policy's check of its Hello (src/security), and a call when it ends (stream counts). */
export interface StreamAccess {
  /** Throws a ZonalError (PERMISSION_DENIED) when the Hello asks for queues the caller may not work. */
  checkHello?(hello: HelloSpec): void;
  /** Called once, when the stream has ended for any reason. */
  onEnded(): void;
}

const MAX_UPDATES_PER_MESSAGE = 10_000;
/** Messages queued towards a worker that stopped reading; past this the stream is ended. */
const MAX_QUEUED_OUTBOUND = 10_000;
const MAX_LABEL_CHARS = 1024;
/** Update messages whose acks wait in line behind a store look-up; past this the stream is ended. */
const MAX_CHAINED_ACK_MESSAGES = 1_000;

/**
 * One worker stream: decode -> core -> (commit) -> encode. Nothing a worker
 * sends can throw out of here; a message that breaks the protocol ends this
 * stream only, with a status that says what was wrong.
 *
 * Invariant: `session` is undefined until a valid Hello arrives, and the
 * stream is ended exactly once (`ended`).
 */
export class WorkerStream implements StreamSink {
  session: SessionState | undefined;
  private ended = false;
  private helloTimer: NodeJS.Timeout | undefined;
  /** Acks that wait for a store look-up; later acks queue behind them so they stay in order. */
  private ackChain: Promise<void> | undefined;
  /** Messages whose acks wait in `ackChain`. */
  private chainedAcks = 0;

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly call: WorkerCall,
    helloTimeoutMs: number,
    private readonly access?: StreamAccess,
  ) {
    this.helloTimer = setTimeout(() => this.fail(Status.DEADLINE_EXCEEDED, 'PROTOCOL_VIOLATION', `no Hello within ${helloTimeoutMs} ms`), helloTimeoutMs);
    call.on('data', (message: WireWorkerMessage) => this.guard(() => this.onMessage(message)));
    call.on('end', () => this.guard(() => this.onPeerGone('half-closed')));
    call.on('error', () => this.guard(() => this.onPeerGone('error')));
    call.on('cancelled', () => this.guard(() => this.onPeerGone('cancelled')));
  }

  send(message: Outgoing<WireDispatcherMessage>): void {
    if (this.ended) return;
    if (this.call.writableLength > MAX_QUEUED_OUTBOUND) {
      // A worker that keeps sending but never reads would grow this buffer without bound.
      this.fail(Status.RESOURCE_EXHAUSTED, 'PROTOCOL_VIOLATION', `more than ${MAX_QUEUED_OUTBOUND} messages queued: the worker is not reading its stream`);
      return;
    }
    if (this.session !== undefined) this.dispatcher.noteOutbound(this.session);
    this.call.write(message);
  }

  /** Ends the stream after the core closed the session. */
  closedByCore(cause: CloseCause): void {
    switch (cause) {
      case 'DRAINED':
      case 'SHUTDOWN':
        this.end();
        return;
      case 'IDLE':
        this.fail(Status.UNAVAILABLE, 'SESSION_IDLE', `nothing received for ${this.session?.idleTimeoutMs ?? 0} ms; unfinished tasks were re-queued`);
        return;
      case 'STALLED':
        this.fail(Status.UNAVAILABLE, 'SESSION_STALLED', `the worker kept sending but stopped reading (no Pong or assignment acknowledged within ${this.session?.idleTimeoutMs ?? 0} ms); unfinished tasks were re-queued`);
        return;
      case 'DRAIN_EXPIRED':
        this.fail(Status.UNAVAILABLE, 'SESSION_IDLE', `drain grace expired; unfinished tasks were re-queued`);
        return;
      default:
        this.end();
    }
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.failInternal(err);
    }
  }

  private failInternal(err: unknown): void {
    this.dispatcher.reportError(err, { where: 'worker-stream', sessionId: this.session?.id });
    this.fail(Status.INTERNAL, 'INTERNAL', 'the dispatcher failed to handle a message on this stream; reconnect');
  }

  private onMessage(message: WireWorkerMessage): void {
    if (this.ended) return;
    const session = this.session;
    if (session === undefined) {
      if (message.kind !== 'hello') {
        this.fail(Status.FAILED_PRECONDITION, 'PROTOCOL_VIOLATION', `the first message must be Hello, got ${message.kind ?? 'an empty message'}`);
        return;
      }
      this.onHello(decodeHello(message.hello));
      return;
    }
    this.dispatcher.touch(session);
    switch (message.kind) {
      case 'hello':
        this.fail(Status.FAILED_PRECONDITION, 'PROTOCOL_VIOLATION', 'Hello may be sent only once per stream');
        return;
      case 'setSlots': {
        const slots = message.setSlots.slots;
        const max = MAX_SLOTS_PER_SESSION;
        if (!Number.isInteger(slots) || slots < 0 || slots > max) {
          this.fail(Status.INVALID_ARGUMENT, 'PROTOCOL_VIOLATION', `set_slots.slots must be 0..${max}, got ${slots}`);
          return;
        }
        this.dispatcher.setSlots(session, slots);
        return;
      }
      case 'updates': {
        const updates = message.updates.updates;
        if (updates.length > MAX_UPDATES_PER_MESSAGE) {
          this.fail(Status.RESOURCE_EXHAUSTED, 'PROTOCOL_VIOLATION', `at most ${MAX_UPDATES_PER_MESSAGE} updates per message`);
          return;
        }
        const acks: UpdateAckOut[] = [];
        for (const update of updates) acks.push(this.dispatcher.applyUpdate(session, decodeUpdate(update)));
        this.sendAcks(acks, updates);
        return;
      }
      case 'ping':
        this.send({ kind: 'pong', pong: { nonce: message.ping.nonce, sentUnixMs: message.ping.sentUnixMs } });
        return;
      case 'pong':
        this.dispatcher.pong(session, u64(message.pong.nonce));
        return;
      case 'drain':
        this.dispatcher.drain(session);
        return;
      default:
        // An empty message still proves the worker is alive; nothing else to do.
        return;
    }
  }

  /**
   * Sends the acks of one TaskUpdates message after the commit. An ack about
   * a task the engine does not know (state '') is completed from the store
   * first (a late update for a task that finished before a restart gets
   * TERMINAL with its final state); acks after it wait, so order is kept.
   */
  private sendAcks(acks: UpdateAckOut[], updates: readonly WireTaskUpdate[]): void {
    const encode = (list: readonly UpdateAckOut[]): Outgoing<WireDispatcherMessage> => ({
      kind: 'acks',
      acks: { acks: list.map((ack, i) => encodeAck(ack, updates[i]?.sequenceId)) },
    });
    // Settled the moment the commit is durable: an attempt lost in that commit rejects its acks.
    const settle = (): UpdateAckOut[] => acks.map((ack, i) => this.dispatcher.settleAck({ taskId: updates[i]?.taskId ?? '', attempt: updates[i]?.attempt ?? 0 }, ack));
    const unknown = acks.some(answeredWithoutTask);
    if (!unknown && this.ackChain === undefined) {
      this.dispatcher.afterCommit(() => this.send(encode(settle())));
      return;
    }
    if (this.chainedAcks >= MAX_CHAINED_ACK_MESSAGES) {
      this.fail(Status.RESOURCE_EXHAUSTED, 'PROTOCOL_VIOLATION', `more than ${MAX_CHAINED_ACK_MESSAGES} update messages wait for their acks (updates about tasks this dispatcher must look up); send fewer at once`);
      return;
    }
    this.chainedAcks += 1;
    const committed = new Promise<UpdateAckOut[]>((resolve) => this.dispatcher.afterCommit(() => resolve(settle())));
    const chain = (this.ackChain ?? Promise.resolve())
      .then(async () => {
        const settled = await committed;
        const completed = unknown ? await Promise.all(settled.map((ack, i) => this.dispatcher.withStoredState(ack, updates[i]?.attempt ?? 0))) : settled;
        this.send(encode(completed));
      })
      .catch((err: unknown) => this.failInternal(err))
      .finally(() => {
        this.chainedAcks -= 1;
      });
    this.ackChain = chain;
    void chain.then(() => {
      if (this.ackChain === chain) this.ackChain = undefined;
    });
  }

  private onHello(hello: HelloSpec): void {
    const problem = helloProblem(hello, MAX_SLOTS_PER_SESSION);
    if (problem !== undefined) {
      this.fail(Status.INVALID_ARGUMENT, 'PROTOCOL_VIOLATION', `invalid Hello: ${problem}`);
      return;
    }
    if (this.helloTimer !== undefined) clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    if (hello.queues.length === 0) hello.queues = ['default'];
    if (this.access?.checkHello !== undefined) {
      try {
        this.access.checkHello(hello);
      } catch (err) {
        const refusal = err instanceof ZonalError ? err : new ZonalError('INTERNAL', String(err));
        this.fail(refusal.code, refusal.reason, refusal.message);
        return;
      }
    }
    this.session = this.dispatcher.openSession(hello, this);
    const options = this.dispatcher.coreOptions;
    this.send({
      kind: 'welcome',
      welcome: {
        sessionId: this.session.id,
        heartbeatIntervalMs: this.session.intervalMs,
        idleTimeoutMs: this.session.idleTimeoutMs,
        drainGraceMs: options.drainGraceMs,
        dispatcherId: this.dispatcher.identity.id,
        dispatcherZone: this.dispatcher.identity.zone,
      },
    });
  }

  private onPeerGone(how: string): void {
    if (this.helloTimer !== undefined) clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    const session = this.session;
    if (session !== undefined) this.dispatcher.closeSession(session, 'STREAM_ENDED', how);
    this.end();
  }

  private end(): void {
    if (this.helloTimer !== undefined) clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    if (this.ended) return;
    this.ended = true;
    this.access?.onEnded();
    try {
      this.call.end();
    } catch {
      // The transport is already gone; nothing left to tell the worker.
    }
  }

  /** Ends this stream with an error status; the session (if any) loses its tasks. */
  fail(code: number, reason: ZonalError['reason'], message: string): void {
    if (this.helloTimer !== undefined) clearTimeout(this.helloTimer);
    this.helloTimer = undefined;
    if (this.ended) return;
    const session = this.session;
    if (session !== undefined && session.lifecycle !== 'CLOSED') this.dispatcher.closeSession(session, 'PROTOCOL_VIOLATION', reason);
    this.ended = true;
    this.access?.onEnded();
    const error = new ZonalError(reason, message, { code });
    try {
      this.call.emit('error', this.dispatcher.toStatus(error));
    } catch {
      // The transport is already gone.
    }
  }
}

function helloProblem(hello: HelloSpec, maxSlots: number): string | undefined {
  if (!NAME_PATTERN.test(hello.workerId)) return `worker_id "${hello.workerId.slice(0, 64)}" must match ${NAME_PATTERN}`;
  if (hello.zone !== '' && !NAME_PATTERN.test(hello.zone)) return `zone "${hello.zone.slice(0, 64)}" must match ${NAME_PATTERN}`;
  if (!Number.isInteger(hello.slots) || hello.slots < 1 || hello.slots > maxSlots) return `slots must be 1..${maxSlots}, got ${hello.slots}`;
  if (hello.queues.length > 64) return 'at most 64 queues';
  for (const queue of hello.queues) if (!NAME_PATTERN.test(queue)) return `queue "${queue.slice(0, 64)}" must match ${NAME_PATTERN}`;
  if (Object.keys(hello.labels).length > 64) return 'at most 64 labels';
  for (const [key, value] of Object.entries(hello.labels)) {
    if (key.length + value.length > MAX_LABEL_CHARS) return `label "${key.slice(0, 32)}" is longer than ${MAX_LABEL_CHARS} characters`;
  }
  return undefined;
}
