/**
 * Property tests of the pure dispatch core (issue 12, section 4), driven by
 * fast-check: each case is a list of operations drawn at random and shrunk
 * on failure, run against the Engine through the core harness (a fake
 * clock, the in-memory store, group commits as the adapter makes them, and
 * effects delivered only after a durable commit).
 *
 * Operations: submits (queues, priorities, attempts, timeouts, delays,
 * idempotency keys, zones); workers that connect, disconnect, reconnect,
 * drain and change their slots; worker updates whose sequence ids and
 * versions are drawn over the whole uint64 range and reach the engine as
 * the dispatcher decodes them (decimal strings through the codec);
 * duplicated, reordered and stale updates, updates for attempts that were
 * taken away and from closed sessions; cancels; clock jumps forward (lease,
 * idle and attempt expiries) and backwards; store outages (commits that
 * fail and write nothing); dispatcher restarts (a new incarnation on the
 * same store, the old one paused with its streams, and resuming later to
 * send its workers' late updates).
 *
 * After every operation: every acknowledged submit is in the store; a task
 * that became terminal never changes again (so never reaches a second
 * terminal state); store versions never go down; no refused update changed
 * a task, and no update from a session that did not hold the task's current
 * attempt was accepted (a late update for an attempt the store had given to
 * another dispatcher is answered REJECTED, and its content never reaches
 * the store); a session is never given an attempt beyond its slots; the
 * engine and the store agree on every task the engine holds. After the
 * operations, healthy workers finish everything: every acknowledged task
 * must end terminal.
 *
 * numRuns: 300 by default (a few seconds); ZONAL_PROPERTY_RUNS runs more,
 * ZONAL_PROPERTY_SEED/ZONAL_PROPERTY_PATH replay a failure
 * (test/support/property-runs.ts), ZONAL_PROPERTY_TRACE=1 prints each step
 * of what runs (use it with a replay), ZONAL_PROPERTY_COVERAGE=1 prints what
 * the runs reached.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { ManualClock } from '../../src/core/clock';
import { holdKey, type CloseCause } from '../../src/core/session';
import { copyRecord, type TaskRecord } from '../../src/core/task-fields';
import { isTerminal } from '../../src/core/task-state';
import type { UpdateAckOut, WorkerUpdate } from '../../src/core/update';
import { ATTEMPT_VERSION_SPAN, MAX_WIRE_INTEGER } from '../../src/core/update-rules';
import { decodeUpdate, encodeAck } from '../../src/protocol/codec';
import type { WireTaskState, WireTaskUpdate } from '../../src/protocol/wire';
import { CoreHarness, seededRandom, T0, type WorkerStream } from '../support/core-harness';
import type { CoreOptionsInput } from '../../src/core/options';
import { MemoryStoreCore } from '../support/memory-task-store';
import { propertyBudgetMs, propertyParameters, propertyRuns, TIMEOUT_MARGIN_MS } from '../support/property-runs';
import { u64 } from '../support/u64-arbitrary';

const DEFAULT_RUNS = 300;
const RUNS = propertyRuns(DEFAULT_RUNS);
const BUDGET_MS = propertyBudgetMs(RUNS, 30);
const QUEUES = ['a', 'b'] as const;
const ZONES = ['z1', 'z2'] as const;
const SAFE = BigInt(MAX_WIRE_INTEGER);
const SPAN = BigInt(ATTEMPT_VERSION_SPAN);
const SEQUENCE_WINDOW = 64;
const CORE: CoreOptionsInput = { backoff: { initialMs: 200, multiplier: 2, maxMs: 5000, jitter: 0.5 }, sequenceWindow: SEQUENCE_WINDOW };
const MAX_INCARNATIONS = 4;
const MAX_OPEN_WORKERS = 5;
/** Answers to an update about an attempt the session does not (or no longer) hold. */
const LATE_REASONS = ['FENCED', 'NOT_HELD', 'TERMINAL'];

// ------------------------------------------------------------------ operations

type Status = Extract<WireTaskState, 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED'>;

/** The sequence id of an update: the next one, any uint64, one too far ahead, or one already used. */
type SeqChoice = { kind: 'next' } | { kind: 'wide'; value: bigint } | { kind: 'gap'; by: number } | { kind: 'reuse'; back: number };

/** Its version: above the task's, at or below it, any uint64, or at the edge of the attempt's range. */
type VersionChoice = { kind: 'next'; by: number } | { kind: 'stale'; back: number } | { kind: 'wide'; value: bigint } | { kind: 'top'; delta: number };

type Op =
  | { kind: 'submit'; queue: number; priority: number; maxAttempts: number; attemptTimeoutMs: number; startTimeoutMs: number; delayMs: number; key: string; zone: number }
  | { kind: 'open'; slots: number; queues: number; zone: number }
  | { kind: 'reconnect'; w: number }
  | { kind: 'close'; w: number; cause: CloseCause }
  | { kind: 'drain'; w: number; graceMs: number }
  | { kind: 'setSlots'; w: number; slots: number }
  | { kind: 'update'; w: number; item: number; status: Status; retryable: boolean; seq: SeqChoice; version: VersionChoice; progress: number }
  | { kind: 'resend'; w: number; entry: number; sameSeq: boolean }
  | { kind: 'wrongAttempt'; w: number; item: number; up: boolean }
  | { kind: 'zombie'; w: number; item: number; status: Status; viaNewSession: boolean }
  | { kind: 'cancel'; task: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'clockBack'; ms: number }
  | { kind: 'touch'; mask: number }
  | { kind: 'outage'; commits: number }
  | { kind: 'restart' }
  | { kind: 'late'; d: number; w: number; item: number; status: Status; retryable: boolean; by: number };

const statusArb = fc.constantFrom<Status>('RUNNING', 'COMPLETED', 'FAILED', 'RUNNING', 'CANCELLED');

const seqArb: fc.Arbitrary<SeqChoice> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ kind: 'next' as const }) },
  { weight: 2, arbitrary: u64().map((value) => ({ kind: 'wide' as const, value })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((by) => ({ kind: 'gap' as const, by })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 5 }).map((back) => ({ kind: 'reuse' as const, back })) },
);

const versionArb: fc.Arbitrary<VersionChoice> = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 3 }).map((by) => ({ kind: 'next' as const, by })) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 2 }).map((back) => ({ kind: 'stale' as const, back })) },
  { weight: 2, arbitrary: u64().map((value) => ({ kind: 'wide' as const, value })) },
  { weight: 1, arbitrary: fc.integer({ min: -1, max: 1 }).map((delta) => ({ kind: 'top' as const, delta })) },
);

const pickArb = fc.nat({ max: 1000 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 14,
    arbitrary: fc.record({
      kind: fc.constant('submit' as const),
      queue: fc.integer({ min: 0, max: 1 }),
      priority: fc.constantFrom(0, 0, 1, -1, 5),
      maxAttempts: fc.integer({ min: 1, max: 3 }),
      attemptTimeoutMs: fc.integer({ min: 500, max: 5000 }),
      startTimeoutMs: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 2000, max: 30_000 }) }),
      delayMs: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3000 }) }),
      key: fc.constantFrom('', '', '', 'k1', 'k2'),
      zone: fc.integer({ min: 0, max: 3 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('open' as const), slots: fc.integer({ min: 1, max: 3 }), queues: fc.integer({ min: 1, max: 3 }), zone: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('reconnect' as const), w: pickArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const), w: pickArb, cause: fc.constantFrom<CloseCause>('STREAM_ENDED', 'PROTOCOL_VIOLATION') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drain' as const), w: pickArb, graceMs: fc.integer({ min: 0, max: 3000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('setSlots' as const), w: pickArb, slots: fc.integer({ min: 0, max: 4 }) }) },
  {
    weight: 20,
    arbitrary: fc.record({ kind: fc.constant('update' as const), w: pickArb, item: pickArb, status: statusArb, retryable: fc.boolean(), seq: seqArb, version: versionArb, progress: fc.integer({ min: 0, max: 1000 }) }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('resend' as const), w: pickArb, entry: pickArb, sameSeq: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wrongAttempt' as const), w: pickArb, item: pickArb, up: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('zombie' as const), w: pickArb, item: pickArb, status: statusArb, viaNewSession: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('cancel' as const), task: pickArb }) },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 2000 }) }, { weight: 1, arbitrary: fc.integer({ min: 5000, max: 15_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 20_000, max: 60_000 }) }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clockBack' as const), ms: fc.integer({ min: 1, max: 10_000 }) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('touch' as const), mask: fc.nat({ max: 31 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('outage' as const), commits: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const) }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('late' as const), d: pickArb, w: pickArb, item: pickArb, status: statusArb, retryable: fc.boolean(), by: fc.integer({ min: 1, max: 2 }) }),
  },
);

// ------------------------------------------------------------------ the simulation

interface Item {
  taskId: string;
  attempt: number;
  /** Set when the dispatcher sent Cancel for this attempt: the reason it gave. */
  cancelled: string;
}

interface Incarnation {
  h: CoreHarness;
  /** How many of its committed batches were looked at for acknowledged submits. */
  batchesSeen: number;
}

interface SimWorker {
  inc: Incarnation;
  stream: WorkerStream;
  closed: boolean;
  workerId: string;
  hello: { zone: string; slots: number; queues: string[] };
  /** What the worker believes it holds, keyed like the engine's holds. */
  known: Map<string, Item>;
  /** Updates whose sequence id the stream consumed, with their answers. */
  history: { update: WorkerUpdate; ack: UpdateAckOut }[];
  /** Hold keys at the last check, to tell new assignments. */
  holdKeys: Set<string>;
  /** What the session held when it closed: what the worker may still report, late. */
  lost: Item[];
}

/** An update whose answer waits for the next durable commit (as the dispatcher sends it). */
interface Unsettled {
  update: WorkerUpdate;
  ack: UpdateAckOut;
  /** The answer must be a rejection: the store had given the attempt away before the update came. */
  mustReject: string | undefined;
  /** The attempt was already taken away in the session (an orphan): a CANCELLED may be confirmed, changing nothing. */
  orphan?: boolean;
  /** Marks the update's content, so the store can be searched for it. */
  marker: string;
}

class PropertyFailure extends Error {}

/** What the runs exercised, over all cases: checked after the property, so a generator that stops reaching a path is noticed. */
const coverage = new Map<string, number>();
function saw(what: string): void {
  coverage.set(what, (coverage.get(what) ?? 0) + 1);
}

function check(ok: boolean, message: () => string): void {
  if (!ok) throw new PropertyFailure(message());
}

const HELD = (state: string): boolean => state === 'ASSIGNED' || state === 'RUNNING';

function plain(r: TaskRecord): string {
  return JSON.stringify({ ...r, payload: [...r.payload], result: r.result && [...r.result] });
}

function brief(r: Readonly<TaskRecord> | undefined): string {
  return r === undefined ? 'absent' : `${r.state} v${r.version} attempt ${r.attempt}/${r.maxAttempts} owner '${r.owner}' session '${r.sessionId}'${r.error ? ` error ${r.error.reason}` : ''}`;
}

function pick<T>(list: readonly T[], n: number): T | undefined {
  return list.length === 0 ? undefined : list[n % list.length];
}

class CoreSim {
  readonly clock = new ManualClock(T0);
  readonly store = new MemoryStoreCore();
  readonly incs: Incarnation[] = [];
  readonly workers: SimWorker[] = [];
  /** Every id a submit answered with. */
  readonly taskIds: string[] = [];
  private readonly taskIdSet = new Set<string>();
  /** Tasks whose submit was acknowledged (its commit completed): they must never be lost. */
  readonly acked = new Set<string>();
  /** Each task as the store last held it. */
  private readonly seenStore = new Map<string, TaskRecord>();
  /** Each task's record when it first became terminal in the store. */
  readonly terminal = new Map<string, TaskRecord>();
  private readonly acceptedVersions = new Set<string>();
  /** The answers waiting for the next commit of `inc`. */
  private unsettled: { inc: Incarnation | undefined; entries: Unsettled[] } = { inc: undefined, entries: [] };
  private workerNo = 0;
  stepNo = 0;

  constructor(private readonly seed: number) {
    this.restart();
    // Two workers to start with, so that most operations find something to act on.
    for (const zone of ZONES) this.openWorker(this.cur, { zone, slots: 2, queues: [...QUEUES] });
  }

  get cur(): Incarnation {
    return this.incs[this.incs.length - 1]!;
  }

  openWorkers(inc: Incarnation): SimWorker[] {
    return this.workers.filter((w) => w.inc === inc && !w.closed);
  }

  /** A copy of the task as the current dispatcher sees it: its own while it holds it, else the store's. */
  view(id: string): TaskRecord | undefined {
    const t = this.cur.h.engine.getTask(id) ?? this.store.peek(id);
    return t && copyRecord(t);
  }

  snap(id: string): string {
    const t = this.view(id);
    return t === undefined ? 'absent' : `${t.state}:${t.version}:${t.attempt}:${t.sessionId}`;
  }

  // ---------------------------------------------------------------- running

  run(op: Op): void {
    this.stepNo += 1;
    switch (op.kind) {
      case 'submit': return this.submit(op);
      case 'open': return void this.openWorker(this.cur, { zone: ZONES[op.zone]!, slots: op.slots, queues: op.queues === 3 ? [...QUEUES] : [QUEUES[op.queues - 1]!] });
      case 'reconnect': return this.reconnect(op.w);
      case 'close': return this.closeWorker(op.w, op.cause);
      case 'drain': return this.drainWorker(op.w, op.graceMs);
      case 'setSlots': return this.setSlots(op.w, op.slots);
      case 'update': return this.update(op);
      case 'resend': return this.resend(op);
      case 'wrongAttempt': return this.wrongAttempt(op);
      case 'zombie': return this.zombie(op);
      case 'cancel': return this.cancel(op.task);
      case 'advance': return this.cur.h.advance(op.ms);
      case 'clockBack': return this.cur.h.advanceTo(this.clock.nowMs() - op.ms);
      case 'touch': return this.touch(op.mask);
      case 'outage': return this.cur.h.failNextCommits(op.commits);
      case 'restart': return this.restart();
      case 'late': return this.late(op);
    }
  }

  step(op: Op): void {
    saw(`op ${op.kind}`);
    this.run(op);
    this.absorb(this.cur);
    this.checkInvariants();
  }

  private submit(op: Extract<Op, { kind: 'submit' }>): void {
    const h = this.cur.h;
    const { id } = h.submit({
      queue: QUEUES[op.queue]!,
      priority: op.priority,
      maxAttempts: op.maxAttempts,
      attemptTimeoutMs: op.attemptTimeoutMs,
      scheduleToStartTimeoutMs: op.startTimeoutMs,
      notBeforeMs: op.delayMs > 0 ? h.now + op.delayMs : 0,
      idempotencyKey: op.key,
      preferredZone: ZONES[op.zone] ?? '',
    });
    if (!this.taskIdSet.has(id)) {
      this.taskIdSet.add(id);
      this.taskIds.push(id);
    }
  }

  private openWorker(inc: Incarnation, hello: SimWorker['hello'], workerId = `worker-${++this.workerNo}`): SimWorker | undefined {
    if (this.openWorkers(inc).length >= MAX_OPEN_WORKERS) return undefined;
    const stream = inc.h.open({ workerId, ...hello });
    const w: SimWorker = { inc, stream, closed: false, workerId, hello, known: new Map(), history: [], holdKeys: new Set(), lost: [] };
    this.workers.push(w);
    return w;
  }

  /** The stream breaks and the worker connects again: a new session, the old one's attempts re-queued. */
  private reconnect(n: number): void {
    const w = pick(this.openWorkers(this.cur), n);
    if (w === undefined) return;
    this.cur.h.close(w.stream, 'STREAM_ENDED');
    this.absorb(this.cur);
    this.openWorker(this.cur, w.hello, w.workerId);
  }

  private closeWorker(n: number, cause: CloseCause): void {
    const w = pick(this.openWorkers(this.cur), n);
    if (w !== undefined) this.cur.h.close(w.stream, cause);
  }

  private drainWorker(n: number, graceMs: number): void {
    const w = pick(
      this.openWorkers(this.cur).filter((x) => x.stream.session.lifecycle === 'OPEN'),
      n,
    );
    if (w !== undefined) this.cur.h.drain(w.stream, graceMs);
  }

  private setSlots(n: number, slots: number): void {
    const w = pick(this.openWorkers(this.cur), n);
    if (w !== undefined) this.cur.h.setSlots(w.stream, slots);
  }

  private touch(mask: number): void {
    this.openWorkers(this.cur).forEach((w, i) => {
      if (((mask >> i) & 1) === 1) w.stream.touch();
    });
  }

  /** A new incarnation of the dispatcher on the same store and clock; the previous one stays, paused, with its streams. */
  private restart(): void {
    if (this.incs.length >= MAX_INCARNATIONS) return;
    const n = this.incs.length + 1;
    const h = new CoreHarness({ store: this.store, clock: this.clock, owner: `gen${n}#1`, random: seededRandom(this.seed * 31 + n), core: CORE });
    this.incs.push({ h, batchesSeen: 0 });
  }

  // ---------------------------------------------------------------- updates

  private wire(taskId: string, attempt: number, status: Status, seq: bigint, version: bigint, progress: number, retryable: boolean, marker: string): Partial<WireTaskUpdate> {
    return {
      taskId,
      attempt,
      status,
      sequenceId: seq.toString(),
      version: version.toString(),
      progressPermille: progress,
      result: status === 'COMPLETED' ? Buffer.from(marker) : Buffer.alloc(0),
      error: status === 'FAILED' ? { code: 2, reason: 'HANDLER_FAILED', message: marker, retryable } : null,
    };
  }

  /** Sends one update as the dispatcher receives it (64-bit fields as decimal strings, through the codec). */
  private sendWire(w: SimWorker, wire: Partial<WireTaskUpdate>): { update: WorkerUpdate; ack: UpdateAckOut } {
    const update = decodeUpdate(wire);
    const ack = w.stream.sendRaw(update);
    const echoed = encodeAck(ack, wire.sequenceId).sequenceId;
    check(echoed === wire.sequenceId, () => `the ack echoes sequence id ${String(echoed)}, the update had ${String(wire.sequenceId)}`);
    return { update, ack };
  }

  private accepted(taskId: string, version: number): void {
    const key = `${taskId}@${version}`;
    check(!this.acceptedVersions.has(key), () => `update ${key} was accepted twice`);
    this.acceptedVersions.add(key);
  }

  /** A worker reports on an attempt it was given (live, or taken away by a Cancel). */
  private update(op: Extract<Op, { kind: 'update' }>): void {
    const w = pick(
      this.openWorkers(this.cur).filter((x) => x.known.size > 0),
      op.w,
    );
    const item = w && pick([...w.known.values()], op.item);
    if (w === undefined || item === undefined) return;
    const session = w.stream.session;
    const key = holdKey(item.taskId, item.attempt);
    const hold = session.holds.get(key);
    const before = this.view(item.taskId);
    check(before !== undefined, () => `task ${item.taskId}, which worker ${w.workerId} holds, is nowhere`);
    const assignedVersion = BigInt(hold?.assignedVersion ?? before!.version);
    const pre = w.stream.nextSequenceId;
    const seq =
      op.seq.kind === 'next' ? BigInt(pre) : op.seq.kind === 'wide' ? op.seq.value : op.seq.kind === 'gap' ? BigInt(pre + op.seq.by) : BigInt(Math.max(1, pre - op.seq.back));
    const current = BigInt(before!.version);
    const v = op.version;
    const version = v.kind === 'next' ? current + BigInt(v.by) : v.kind === 'stale' ? (current > BigInt(v.back) ? current - BigInt(v.back) : 0n) : v.kind === 'wide' ? v.value : assignedVersion + SPAN + BigInt(v.delta);
    const live = hold !== undefined && !hold.orphan && HELD(before!.state) && before!.sessionId === session.id && before!.attempt === item.attempt;
    const snapBefore = this.snap(item.taskId);
    const marker = `u-${this.stepNo}`;
    const { update, ack } = this.sendWire(w, this.wire(item.taskId, item.attempt, op.status, seq, version, op.progress, op.retryable, marker));
    saw(`update ${ack.result} ${ack.reason}`);
    if (seq > SAFE) saw('sequence id above 2^53-1');
    if (version > SAFE) saw('version above 2^53-1');
    const consumed = w.stream.nextSequenceId === pre + 1;
    const said = (): string => `update seq ${seq} version ${version} ${op.status} for ${key} (task ${brief(before)}, hold ${hold === undefined ? 'none' : hold.orphan ? 'orphan' : 'live'}) answered ${ack.result} ${ack.reason}`;

    // The sequence rule: only the next id is consumed; any other is answered and not consumed.
    check(consumed === (seq === BigInt(pre)), () => `${said()}: the stream's next sequence id went from ${pre} to ${w.stream.nextSequenceId}`);
    if (!consumed) check(w.stream.nextSequenceId === pre, () => `${said()}: sequence id moved`);
    if (seq < 1n || seq > SAFE) check(ack.result === 'REJECTED' && ack.reason === 'INVALID_UPDATE', () => `${said()}: a sequence id outside 1..2^53-1 must be INVALID_UPDATE`);
    else if (consumed && (version < 1n || version > SAFE)) check(ack.result === 'REJECTED' && ack.reason === 'INVALID_UPDATE', () => `${said()}: a version outside 1..2^53-1 must be INVALID_UPDATE`);

    // And the other way round: the holder's next update, with a version inside its attempt's range, is accepted.
    const valid = consumed && version > current && version <= assignedVersion + SPAN && op.status !== 'CANCELLED';
    if (live && valid) check(ack.result === 'ACCEPTED', () => `${said()}: a valid update from the holder was refused`);

    if (ack.result === 'ACCEPTED' && hold !== undefined && !hold.orphan) {
      // Only the session holding the task's current attempt changes it, with a higher version inside the attempt's range.
      check(consumed, () => `${said()}: accepted without consuming its sequence id`);
      check(live, () => `${said()}: accepted from a session that does not hold the current attempt`);
      check(op.status !== 'CANCELLED', () => `${said()}: CANCELLED accepted without a Cancel`);
      check(version > current && version <= assignedVersion + SPAN && version <= SAFE, () => `${said()}: accepted a version outside ${current + 1n}..${assignedVersion + SPAN}`);
      this.accepted(item.taskId, Number(version));
    } else {
      check(ack.result !== 'ACCEPTED' || hold?.orphan === true, () => `${said()}: accepted for an attempt the session does not hold`);
      // A refused update, a duplicate, or a report on an attempt taken away: the task is untouched.
      check(this.snap(item.taskId) === snapBefore, () => `${said()}: the task changed from ${snapBefore} to ${this.snap(item.taskId)}`);
    }
    if (consumed) w.history.push({ update, ack });
    if (!session.holds.has(key)) w.known.delete(key);
    this.unsettled = { inc: this.cur, entries: [{ update, ack, mustReject: undefined, marker }] };
  }

  /** The same update again: under its own sequence id (answered as before), or under a new one (never applied twice). */
  private resend(op: Extract<Op, { kind: 'resend' }>): void {
    const w = pick(
      this.openWorkers(this.cur).filter((x) => x.history.length > 0),
      op.w,
    );
    if (w === undefined) return;
    const pre = w.stream.nextSequenceId;
    if (op.sameSeq) {
      const entry = pick(w.history, op.entry);
      if (entry === undefined) return;
      const snapBefore = this.snap(entry.update.taskId);
      const ack = w.stream.sendRaw({ ...entry.update });
      const tooOld = entry.update.sequenceId <= pre - 1 - SEQUENCE_WINDOW;
      const want = tooOld ? 'REJECTED' : entry.ack.result === 'ACCEPTED' ? 'DUPLICATE' : entry.ack.result;
      const said = `resend of seq ${entry.update.sequenceId} (first answered ${entry.ack.result} ${entry.ack.reason}, next id ${pre}) answered ${ack.result} ${ack.reason}`;
      check(ack.result === want, () => `${said}: expected ${want}`);
      if (tooOld) check(ack.reason === 'SEQUENCE_REGRESSION', () => `${said}: expected SEQUENCE_REGRESSION`);
      // An answer completed from the store says what the store holds now; other answers are repeated exactly.
      else if (!LATE_REASONS.includes(entry.ack.reason)) check(ack.reason === entry.ack.reason, () => `${said}: the reason changed`);
      check(w.stream.nextSequenceId === pre, () => `${said}: consumed a sequence id`);
      check(this.snap(entry.update.taskId) === snapBefore, () => `${said}: the task changed`);
      return;
    }
    const entry = pick(
      w.history.filter((e) => e.ack.result === 'ACCEPTED'),
      op.entry,
    );
    if (entry === undefined) return;
    const snapBefore = this.snap(entry.update.taskId);
    const update = { ...entry.update, sequenceId: pre };
    const ack = w.stream.sendRaw(update);
    const said = `an accepted ${entry.update.status} v${entry.update.version} of ${entry.update.taskId} sent again under seq ${pre}, answered ${ack.result} ${ack.reason}`;
    check(ack.result !== 'ACCEPTED', () => `${said}: applied twice`);
    check(w.stream.nextSequenceId === pre + 1, () => `${said}: did not consume its sequence id`);
    check(this.snap(entry.update.taskId) === snapBefore, () => `${said}: the task changed from ${snapBefore} to ${this.snap(entry.update.taskId)}`);
    w.history.push({ update, ack });
  }

  /** An update for an attempt next to the one the worker holds. */
  private wrongAttempt(op: Extract<Op, { kind: 'wrongAttempt' }>): void {
    const w = pick(this.openWorkers(this.cur), op.w);
    const item = w && pick([...w.known.values()], op.item);
    if (w === undefined || item === undefined) return;
    const attempt = op.up || item.attempt === 1 ? item.attempt + 1 : item.attempt - 1;
    const other = w.stream.session.holds.get(holdKey(item.taskId, attempt));
    if (other !== undefined && !other.orphan) return; // it really holds that attempt too
    this.fenced(w, item.taskId, attempt, 'RUNNING', `wrong attempt ${attempt} (the worker holds ${item.attempt})`);
  }

  /** A closed session's attempt reported late: on the closed session, or by the worker after it reconnected. */
  private zombie(op: Extract<Op, { kind: 'zombie' }>): void {
    const formers = (w: SimWorker): Item[] => this.workers.filter((x) => x !== w && x.workerId === w.workerId && x.closed).flatMap((x) => x.lost);
    const candidates = this.workers.filter((w) => w.inc === this.cur && w.closed !== op.viaNewSession && (op.viaNewSession ? formers(w) : w.lost).length > 0);
    const w = pick(candidates, op.w);
    const item = w && pick(op.viaNewSession ? formers(w) : w.lost, op.item);
    if (w === undefined || item === undefined) return;
    if (w.stream.session.holds.has(holdKey(item.taskId, item.attempt))) return; // this session holds that attempt now
    this.fenced(w, item.taskId, item.attempt, op.status, op.viaNewSession ? "a reconnected worker reports its old session's attempt" : 'a closed session reports');
  }

  /** Sends an update that must be refused (FENCED, NOT_HELD or TERMINAL) and must leave the task untouched. */
  private fenced(w: SimWorker, taskId: string, attempt: number, status: Status, what: string): void {
    const before = this.view(taskId);
    if (before === undefined) return;
    const snapBefore = this.snap(taskId);
    const pre = w.stream.nextSequenceId;
    const { update, ack } = this.sendWire(w, this.wire(taskId, attempt, status, BigInt(pre), BigInt(before.version + 1), 0, false, `z-${this.stepNo}`));
    const said = `${what}: ${status} for ${taskId}#${attempt} (task ${brief(before)}) answered ${ack.result} ${ack.reason}`;
    check(ack.result === 'REJECTED' && LATE_REASONS.includes(ack.reason), () => `${said}: expected REJECTED ${LATE_REASONS.join('/')}`);
    saw(`fenced ${ack.reason}`);
    check(this.snap(taskId) === snapBefore, () => `${said}: the task changed from ${snapBefore} to ${this.snap(taskId)}`);
    if (w.stream.nextSequenceId === pre + 1) w.history.push({ update, ack });
  }

  /**
   * A worker of a paused earlier incarnation reports on an attempt it holds
   * there; that incarnation then commits (its writes are conditional on the
   * versions it read) and answers. If the store had already given the attempt
   * away, the answer must be a rejection and nothing of the update may land.
   */
  private late(op: Extract<Op, { kind: 'late' }>): void {
    const olds = this.incs.slice(0, -1);
    const inc = pick(olds, op.d);
    if (inc === undefined) return;
    const w = pick(
      this.openWorkers(inc).filter((x) => x.known.size > 0),
      op.w,
    );
    const item = w && pick([...w.known.values()], op.item);
    if (w === undefined || item === undefined) return;
    const session = w.stream.session;
    const key = holdKey(item.taskId, item.attempt);
    const stored = this.store.get(item.taskId);
    const givenAway = stored === undefined || !(HELD(stored.state) && stored.owner === inc.h.owner && stored.attempt === item.attempt && stored.sessionId === session.id);
    const mine = inc.h.engine.getTask(item.taskId) ?? stored;
    if (mine === undefined) return;
    const orphan = session.holds.get(key)?.orphan === true;
    const marker = `late-${this.stepNo}`;
    const { update, ack } = this.sendWire(w, this.wire(item.taskId, item.attempt, op.status, BigInt(w.stream.nextSequenceId), BigInt(mine.version + op.by), 500, op.retryable, marker));
    w.history.push({ update, ack });
    if (!session.holds.has(key)) w.known.delete(key);
    const mustReject = givenAway ? `the store held ${brief(stored)} before a late ${op.status} v${update.version} for ${key} from ${inc.h.owner}` : undefined;
    this.unsettled = { inc, entries: [{ update, ack, mustReject, marker, orphan }] };
    this.absorb(inc);
  }

  private cancel(n: number): void {
    const id = pick(this.taskIds, n);
    if (id === undefined) return;
    const before = this.view(id);
    const out = this.cur.h.cancel(id, 'property');
    const said = `CancelTask(${id}) of ${brief(before)} answered ${JSON.stringify(out)}`;
    if (before === undefined) check(out === undefined, () => said);
    else if (isTerminal(before.state)) check(out?.state === before.state && out.cancelled === false, () => said);
    else check(out?.state === 'CANCELLED' && out.cancelled, () => said);
    if (out?.cancelled === true) {
      this.absorb(this.cur);
      check(this.store.peek(id)?.state === 'CANCELLED', () => `${said}, but the store holds ${brief(this.store.peek(id))} after the commit`);
    }
  }

  // ---------------------------------------------------------------- effects and invariants

  private workerOf(inc: Incarnation, sessionId: string): SimWorker {
    const w = this.workers.find((x) => x.inc === inc && x.stream.id === sessionId);
    check(w !== undefined, () => `an effect for unknown session ${sessionId}`);
    return w!;
  }

  /** Commits what the incarnation has to commit and hands its effects to the workers, as the adapter would after a durable commit. */
  absorb(inc: Incarnation): void {
    const h = inc.h;
    for (const a of h.dispatch()) {
      const w = this.workerOf(inc, a.sessionId);
      const key = holdKey(a.taskId, a.attempt);
      check(!w.closed && w.stream.session.lifecycle === 'OPEN', () => `assignment of ${key} to ${w.closed ? 'closed' : w.stream.session.lifecycle} session ${a.sessionId}`);
      check(!w.known.has(key), () => `${key} assigned twice to ${a.sessionId}`);
      w.known.set(key, { taskId: a.taskId, attempt: a.attempt, cancelled: '' });
    }
    for (const c of h.takeCancels()) {
      const w = this.workerOf(inc, c.sessionId);
      if (w.closed) continue;
      const item = w.known.get(holdKey(c.taskId, c.attempt));
      check(item !== undefined, () => `Cancel for ${c.taskId}#${c.attempt}, which session ${c.sessionId} does not hold`);
      check(item!.cancelled === '', () => `a second Cancel for ${c.taskId}#${c.attempt}`);
      check(['CANCELLED', 'ATTEMPT_TIMEOUT', 'LEASE_LOST'].includes(c.reason), () => `Cancel with reason ${c.reason}`);
      item!.cancelled = c.reason;
    }
    for (const c of h.takeClosed()) {
      const w = this.workerOf(inc, c.sessionId);
      check(!w.closed, () => `session ${c.sessionId} closed twice`);
      w.closed = true;
      w.lost = [...w.known.values()];
      w.known.clear();
    }
    if (this.unsettled.inc === inc) {
      for (const u of this.unsettled.entries) this.settled(inc, u);
      this.unsettled = { inc: undefined, entries: [] };
    }
  }

  /** The answer as the worker gets it once the commit is durable; what it accepted is in the store. */
  private settled(inc: Incarnation, u: Unsettled): void {
    const settled = inc.h.engine.settleAck(u.update, u.ack);
    const stored = this.store.peek(u.update.taskId);
    const said = `${u.update.status} v${u.update.version} for ${u.update.taskId}#${u.update.attempt} through ${inc.h.owner}, answered ${settled.result} ${settled.reason} after the commit (store: ${brief(stored)})`;
    saw(`settled ${u.mustReject === undefined ? '' : 'late '}${settled.result} ${settled.reason}`);
    if (u.mustReject !== undefined) {
      // A fenced update never applies: nothing of it in the store, and not acknowledged.
      const landed = stored !== undefined && (stored.error?.message === u.marker || (stored.result !== null && Buffer.from(stored.result).toString() === u.marker));
      check(!landed, () => `${u.mustReject}: its content reached the store: ${said}`);
      const confirmed = u.orphan === true && u.update.status === 'CANCELLED' && settled.result === 'ACCEPTED' && stored?.state === 'CANCELLED';
      check(settled.result === 'REJECTED' || confirmed, () => `${u.mustReject}: ${said}`);
      return;
    }
    if (settled.result !== 'ACCEPTED' || u.update.status === 'CANCELLED') return;
    // No acknowledged update is lost: it is durable.
    check(stored !== undefined && stored.version >= u.update.version, () => `acknowledged but not durable: ${said}`);
    if (u.update.status === 'COMPLETED') check(stored!.state === 'COMPLETED' && stored!.version === u.update.version, () => `acknowledged COMPLETED but: ${said}`);
  }

  checkInvariants(): void {
    // Acknowledged submits: every insert of a committed batch (a duplicate answers with the task that holds its key).
    for (const inc of this.incs) {
      for (const batch of inc.h.batches.slice(inc.batchesSeen)) {
        for (const r of batch.inserts) this.acked.add(inc.h.engine.resolveSubmitted(r.id).taskId);
      }
      inc.batchesSeen = inc.h.batches.length;
    }
    for (const id of this.acked) check(this.store.peek(id) !== undefined, () => `acknowledged task ${id} is not in the store`);

    let inStore = 0;
    for (const id of this.taskIds) {
      const rec = this.store.peek(id);
      if (rec === undefined) {
        check(!this.seenStore.has(id), () => `task ${id} left the store`);
        continue;
      }
      inStore += 1;
      const prev = this.seenStore.get(id);
      if (prev !== undefined) {
        check(rec.version >= prev.version, () => `task ${id}: the store's version went down, ${brief(prev)} -> ${brief(rec)}`);
        // Terminal is forever: never another state, never another version, nothing else either.
        if (isTerminal(prev.state)) check(plain(rec) === plain(prev), () => `terminal task ${id} changed: ${plain(prev)} -> ${plain(rec)}`);
      }
      if (isTerminal(rec.state) && !this.terminal.has(id)) {
        this.terminal.set(id, copyRecord(rec));
        saw(`ended ${rec.state} ${rec.error?.reason ?? ''}`);
      }
      check(HELD(rec.state) === (rec.owner !== '' && rec.sessionId !== ''), () => `task ${id}: ${brief(rec)}`);
      check(rec.attempt >= 1 && rec.attempt <= rec.maxAttempts, () => `task ${id}: ${brief(rec)}`);
      if (prev === undefined || prev.version !== rec.version || prev.state !== rec.state) this.seenStore.set(id, copyRecord(rec));
    }
    const total = Object.values(this.store.countByState()).reduce((a, b) => a + b, 0);
    check(total === inStore, () => `the store holds ${total} tasks, ${inStore} of them submitted`);

    // Sessions: what the worker knows is what the engine holds; no new attempt beyond the slots.
    for (const w of this.workers) {
      const s = w.stream.session;
      if (w.closed) {
        check(s.lifecycle === 'CLOSED' && s.holds.size === 0, () => `closed session ${s.id} is ${s.lifecycle} with ${s.holds.size} holds`);
        continue;
      }
      check(s.lifecycle !== 'CLOSED', () => `session ${s.id} closed without telling its worker`);
      check(s.holds.size === w.known.size, () => `session ${s.id} holds [${[...s.holds.keys()]}], its worker knows [${[...w.known.keys()]}]`);
      let added = false;
      for (const [key, hold] of s.holds) {
        const item = w.known.get(key);
        check(item !== undefined && hold.orphan === (item.cancelled !== ''), () => `session ${s.id}: hold ${key} (orphan ${hold.orphan}) vs the worker's ${JSON.stringify(item)}`);
        if (!w.holdKeys.has(key)) added = true;
      }
      check(!added || s.holds.size <= s.slots, () => `session ${s.id} was given an attempt beyond its slots: ${s.holds.size} held, ${s.slots} slots`);
      w.holdKeys = new Set(s.holds.keys());
    }

    // The current incarnation holds exactly what its sessions run, as the store has it.
    const h = this.cur.h;
    const live = new Set<string>();
    for (const w of this.openWorkers(this.cur)) {
      for (const hold of w.stream.session.holds.values()) {
        if (hold.orphan) continue;
        const mine = h.engine.getTask(hold.taskId);
        const rec = this.store.peek(hold.taskId);
        check(mine !== undefined && rec !== undefined && plain(mine) === plain(rec), () => `held task ${hold.taskId}: engine ${brief(mine)} vs store ${brief(rec)}`);
        check(mine!.sessionId === w.stream.id && mine!.attempt === hold.attempt && rec!.owner === h.owner, () => `hold ${hold.taskId}#${hold.attempt} in ${w.stream.id}: task ${brief(rec)}`);
        check(!live.has(hold.taskId), () => `task ${hold.taskId} held twice`);
        live.add(hold.taskId);
      }
    }
    check(h.engine.stats().tasksInMemory === live.size, () => `the engine holds ${h.engine.stats().tasksInMemory} tasks, its sessions run ${live.size}`);
    for (const id of this.taskIds) {
      const rec = this.store.peek(id);
      if (rec !== undefined && rec.owner === h.owner) check(live.has(id), () => `task ${id} is ${brief(rec)} in the store, but no session of ${h.owner} runs it`);
    }
  }

  /** Healthy workers take over and finish everything; every acknowledged task must end terminal. */
  finish(): void {
    const inc = this.cur;
    const h = inc.h;
    h.failNextCommits(0);
    for (const w of this.openWorkers(inc)) h.close(w.stream, 'SHUTDOWN');
    this.absorb(inc);
    this.checkInvariants();
    const healthy = ZONES.map((zone) => this.openWorker(inc, { zone, slots: 50, queues: [...QUEUES] }, `healthy-${zone}`)!);
    const unfinished = (): string[] => [...this.acked].filter((id) => !isTerminal(this.store.peek(id)!.state));
    for (let round = 1; round <= 300; round++) {
      for (const w of healthy) w.stream.touch();
      this.absorb(inc);
      this.checkInvariants();
      for (const w of healthy) {
        for (const item of [...w.known.values()]) {
          const t = this.view(item.taskId)!;
          const next = (): bigint => BigInt(this.view(item.taskId)!.version + 1);
          if (item.cancelled !== '') {
            this.sendWire(w, this.wire(item.taskId, item.attempt, item.cancelled === 'CANCELLED' ? 'CANCELLED' : 'FAILED', BigInt(w.stream.nextSequenceId), next(), 0, false, 'over'));
          } else {
            const running = this.sendWire(w, this.wire(t.id, item.attempt, 'RUNNING', BigInt(w.stream.nextSequenceId), next(), 500, false, 'running'));
            check(running.ack.result === 'ACCEPTED', () => `a healthy worker's RUNNING for ${t.id}#${item.attempt} was answered ${running.ack.result} ${running.ack.reason}`);
            const done = this.sendWire(w, this.wire(t.id, item.attempt, 'COMPLETED', BigInt(w.stream.nextSequenceId), next(), 1000, false, 'done'));
            check(done.ack.result === 'ACCEPTED' && done.ack.state === 'COMPLETED', () => `a healthy worker's COMPLETED for ${t.id}#${item.attempt} was answered ${done.ack.result} ${done.ack.reason}`);
            this.unsettled = { inc, entries: [{ update: done.update, ack: done.ack, mustReject: undefined, marker: 'done' }] };
          }
          w.known.delete(holdKey(item.taskId, item.attempt));
          this.absorb(inc);
          this.checkInvariants();
        }
      }
      if (unfinished().length === 0) {
        // Terminal states stay put while time passes.
        for (let i = 0; i < 3; i++) {
          h.advance(60_000);
          this.absorb(inc);
          this.checkInvariants();
        }
        check(this.terminal.size === this.acked.size, () => `${this.acked.size} tasks acknowledged, ${this.terminal.size} terminal`);
        return;
      }
      h.advance(2000);
      this.absorb(inc);
      this.checkInvariants();
    }
    throw new PropertyFailure(`healthy workers did not finish: ${unfinished().map((id) => `${id} ${brief(this.store.peek(id))}`).join('; ')}`);
  }
}

function describeOp(op: Op): string {
  return JSON.stringify(op, (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value));
}

/** Runs the operations, checking the invariants after each; an error names the step. */
function runCore(seed: number, ops: readonly Op[]): CoreSim {
  const sim = new CoreSim(seed);
  const trace = process.env['ZONAL_PROPERTY_TRACE'] === '1';
  ops.forEach((op, i) => {
    try {
      sim.step(op);
      if (trace) console.log(`step ${i} ${describeOp(op)}\n  ${sim.taskIds.map((id) => `${id}: ${brief(sim.store.peek(id))}`).join('\n  ')}`);
    } catch (err) {
      if (err instanceof PropertyFailure) throw new PropertyFailure(`step ${i} ${describeOp(op)}: ${err.message}`);
      throw err;
    }
  });
  sim.finish();
  return sim;
}

/** What a run of the default size reaches every time (a generator change that stops reaching one of them fails here). */
const MUST_COVER = [
  'ended COMPLETED ',
  'ended FAILED HANDLER_FAILED',
  'ended FAILED ATTEMPT_TIMEOUT',
  'ended FAILED LEASE_LOST',
  'ended FAILED SCHEDULE_TO_START_TIMEOUT',
  'ended CANCELLED CANCELLED',
  'update REJECTED STALE_VERSION',
  'update REJECTED INVALID_UPDATE',
  'update REJECTED SEQUENCE_GAP',
  'update REJECTED SEQUENCE_REGRESSION',
  'update REJECTED FENCED',
  'update REJECTED TERMINAL',
  'fenced FENCED',
  'fenced TERMINAL',
  'settled late REJECTED FENCED',
  'settled late REJECTED TERMINAL',
  'sequence id above 2^53-1',
  'version above 2^53-1',
];

const replay = (ops: Op[]): (() => void) => () => {
  runCore(1, ops);
};

describe('core properties (fast-check)', () => {
  let propertyHeld = false;

  it(
    'random interleavings keep every invariant, and healthy workers then finish every acknowledged task',
    () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.array(opArb, { minLength: 1, maxLength: 150, size: 'max' }), (seed, ops) => {
          runCore(seed, ops);
        }),
        propertyParameters(DEFAULT_RUNS, BUDGET_MS),
      );
      propertyHeld = true;
    },
    BUDGET_MS + TIMEOUT_MARGIN_MS,
  );

  it('reached every ending, every refusal, and late updates refused after a restart', () => {
    if (process.env['ZONAL_PROPERTY_SEED'] || !propertyHeld) return; // a replay runs one case; a failure says enough
    if (process.env['ZONAL_PROPERTY_COVERAGE'] === '1') console.log([...coverage].sort().map(([k, n]) => `${k}: ${n}`).join('\n'));
    const missing = MUST_COVER.filter((what) => !coverage.has(what));
    if (missing.length > 0) throw new Error(`the runs never reached: ${missing.join('; ')}`);
  });

  // Counterexamples this property found (fast-check's shrunk output, cut at the failing step), kept as regressions.
  // Both bugs were fixed in 2a3add0 ("settleAck voids an update accepted before its task was lost whatever the
  // attempt became; a repeated write must match error and result too").
  describe('regressions it found', () => {
    const submit = { kind: 'submit', queue: 0, priority: 0, attemptTimeoutMs: 500, startTimeoutMs: 0, delayMs: 0, key: '', zone: 0 } as const;
    const late = { kind: 'late', d: 0, w: 0, item: 0, by: 1 } as const;

    it(
      'a late FAILED from a paused dispatcher, for a task the next incarnation failed meanwhile, is REJECTED (the store does not count it a repeat)',
      // The task is assigned at once to the first incarnation's worker (v2). A restart; 10 s later the claim's own lease has
      // passed and the new incarnation's sweep fails it (1 attempt): FAILED v3 LEASE_LOST. The old worker then reports FAILED
      // (not retryable) at v3; its dispatcher writes FAILED v3 expecting v2. The store used to count that as a repeat of the row
      // (same version, state, attempt and owner) and the late update was answered ACCEPTED.
      replay([{ ...submit, maxAttempts: 1 }, { kind: 'restart' }, { kind: 'advance', ms: 10_001 }, { ...late, status: 'FAILED', retryable: false }]),
    );

    it(
      'a late retryable FAILED for a task cancelled through the next incarnation is REJECTED, though it retried the task in memory first',
      // The old dispatcher retries the task in memory (attempt 2) before its write conflicts with the cancel; settleAck used to
      // compare the lost attempt (2) with the update's (1) and let ACCEPTED through.
      replay([{ ...submit, maxAttempts: 2 }, { kind: 'restart' }, { kind: 'cancel', task: 0 }, { ...late, status: 'FAILED', retryable: true }]),
    );

    it('a late COMPLETED is REJECTED FENCED when the same commit claims the task again at its next attempt', () => {
      const clock = new ManualClock(T0);
      const store = new MemoryStoreCore();
      const core: CoreOptionsInput = { backoff: { initialMs: 0, multiplier: 1, maxMs: 0, jitter: 0 } };
      const first = new CoreHarness({ store, clock, owner: 'gen1#1', core });
      const w = first.open({ slots: 2, queues: ['q'] });
      first.submit({ queue: 'q', maxAttempts: 2 });
      const [a] = first.dispatch();
      // A new incarnation reaps attempt 1 once the claim's lease has passed: PENDING, attempt 2, v3.
      const second = new CoreHarness({ store, clock, owner: 'gen2#1', core });
      second.advance(10_001);
      // Its commit's wake-up (PostgreSQL NOTIFY) reaches the paused one, whose worker then reports attempt 1 done.
      first.engine.noteReady(['q'], clock.nowMs());
      const ack = w.sendCommitted({ taskId: a!.taskId, attempt: 1, status: 'COMPLETED', version: a!.version + 1 });
      // The write conflicted (attempt 1 was lost), and the same commit claimed attempt 2 for this worker's free slot; settleAck
      // used to see the task in memory again and let ACCEPTED through.
      if (store.peek(a!.taskId)?.attempt !== 2) throw new Error(`setup: the store holds ${brief(store.peek(a!.taskId))}`);
      if (ack.result !== 'REJECTED' || ack.reason !== 'FENCED') throw new Error(`attempt 1's COMPLETED was answered ${ack.result} ${ack.reason}, though attempt 2 holds the task`);
    });
  });
});
