/**
 * A soak producer: the SDK's ProducerClient (the build named by `sdk`) on
 * `xds:///zonal` with its zone's bootstrap (GRPC_XDS_BOOTSTRAP), submitting
 * `ratePerSec` tasks a second after `go` (open loop), each with its own
 * idempotency key, of the kinds in task-kinds.ts. A submit that fails is
 * retried with the same key until it is acknowledged (so a retry after a
 * lost answer gets the task the first try made), and only then reported:
 *
 *   {"event":"ack","key","taskId","kind","tries","servedBy","deduplicated","atMs"}   the submit promise resolved
 *   {"event":"cancel","taskId","answered","cancelled","state","sentAtMs","answeredAtMs","tries","history"}   a `cancel` task's CancelTask outcome
 *   {"event":"unacked","key","kind","tries","lastError"}                      given up at stop (never acknowledged)
 *   {"event":"done", ...counts}                                                after `stop`
 *
 * At most `maxInFlight` keys are being submitted at once; a tick that finds
 * them all busy (the store or every dispatcher down) submits nothing and is
 * counted as shed. On `stop` (stdin) it stops ticking, sends the cancels
 * still waiting, keeps retrying what is in flight for `finishMs`, reports,
 * and exits. stdout lines are written synchronously (a pipe on Linux), so a
 * reported acknowledgement is never lost.
 */
import * as readline from 'node:readline';
import type { ProducerClient as ProducerClientType } from '../../src/client/producer-client';
import { emit, settings } from '../deployed/messages';
import { Random } from './random';
import { encodePayload, SOAK_MAX_ATTEMPTS, SOAK_QUEUE, TASK_KINDS, type KindName } from './task-kinds';

interface Settings {
  sdk: string;
  name: string;
  zone: string;
  /** Prefix of every idempotency key, unique to the run. */
  runId: string;
  ratePerSec: number;
  maxInFlight: number;
  seed: number;
  callTimeoutMs: number;
  finishMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Reasons a retry cannot fix: the request itself is wrong (a soak bug, reported). */
const PERMANENT = new Set(['INVALID_ARGUMENT', 'PAYLOAD_TOO_LARGE', 'BATCH_TOO_LARGE', 'PERMISSION_DENIED', 'UNAUTHENTICATED']);

function reasonOf(err: unknown): string {
  const e = err as { reason?: unknown; code?: unknown; message?: unknown };
  return String(e?.reason ?? e?.code ?? e?.message ?? err);
}

async function main(): Promise<void> {
  const s = settings<Settings>();
  const { ProducerClient } = require(s.sdk) as { ProducerClient: typeof ProducerClientType };
  const random = new Random(s.seed);
  const producer = new ProducerClient({ target: 'xds:///zonal', zone: s.zone, call: { callTimeoutMs: s.callTimeoutMs, maxAttempts: 3 } });
  for (let i = 0; ; i++) {
    try {
      await producer.ready({ deadlineMs: 10_000 });
      break;
    } catch (err) {
      if (i >= 5) throw err;
    }
  }
  const counts = { submitted: 0, acked: 0, deduplicated: 0, unacked: 0, rejected: 0, shed: 0, retries: 0, cancels: 0, cancelsUnanswered: 0 };
  const failures: Record<string, number> = {};
  const byKind: Record<string, number> = {};
  let seq = 0;
  let inFlight = 0;
  let stopping = false;
  let finishBy = Infinity;
  const waitingCancels = new Map<string, NodeJS.Timeout>();
  const cancelsInFlight = new Set<Promise<void>>();

  const cancel = (taskId: string): void => {
    waitingCancels.delete(taskId);
    counts.cancels += 1;
    const done = (async () => {
      const sentAtMs = Date.now();
      const history: string[] = [];
      for (let tries = 1; tries <= 6; tries++) {
        try {
          const answer = await producer.cancel(taskId, 'soak: cancelled on purpose');
          emit('cancel', { taskId, answered: true, cancelled: answer.cancelled, state: answer.state, sentAtMs, answeredAtMs: Date.now(), tries, history });
          return;
        } catch (err) {
          const reason = reasonOf(err);
          history.push(`+${Date.now() - sentAtMs}ms ${reason}`);
          failures[`cancel:${reason}`] = (failures[`cancel:${reason}`] ?? 0) + 1;
          if (stopping && Date.now() >= finishBy) break;
          await sleep(1_000);
        }
      }
      counts.cancelsUnanswered += 1;
      emit('cancel', { taskId, answered: false, sentAtMs, history });
    })();
    cancelsInFlight.add(done);
    void done.finally(() => cancelsInFlight.delete(done));
  };

  const submitUntilAcked = async (key: string, kind: KindName, sleepMs: number): Promise<void> => {
    const payload = encodePayload({ kind, sleepMs, key });
    const task = { payload, queue: SOAK_QUEUE, idempotencyKey: key, maxAttempts: SOAK_MAX_ATTEMPTS, attemptTimeoutMs: TASK_KINDS[kind].attemptTimeoutMs };
    let lastError = '';
    /** Why the earlier tries failed, with when (ms since the first try): in the ack, to trace a submit that took several. */
    const history: string[] = [];
    const firstMs = Date.now();
    for (let tries = 1; ; tries++) {
      try {
        const out = await producer.submit(task);
        counts.acked += 1;
        if (out.deduplicated) counts.deduplicated += 1;
        emit('ack', { key, taskId: out.taskId, kind, tries, servedBy: out.servedBy, deduplicated: out.deduplicated, atMs: Date.now(), ...(history.length > 0 ? { history } : {}) });
        if (kind === 'cancel') {
          if (stopping) cancel(out.taskId);
          else waitingCancels.set(out.taskId, setTimeout(() => cancel(out.taskId), random.int(200, 1_500)));
        }
        return;
      } catch (err) {
        lastError = reasonOf(err);
        failures[lastError] = (failures[lastError] ?? 0) + 1;
        if (history.length < 10) history.push(`+${Date.now() - firstMs}ms ${lastError}`);
        if (PERMANENT.has(lastError)) {
          counts.rejected += 1;
          emit('unacked', { key, kind, tries, lastError, permanent: true });
          return;
        }
        if (stopping && Date.now() >= finishBy) {
          counts.unacked += 1;
          emit('unacked', { key, kind, tries, lastError });
          return;
        }
        counts.retries += 1;
        await sleep(Math.min(2_000, 100 * 2 ** Math.min(tries, 5)) * (0.5 + Math.random() / 2));
      }
    }
  };

  const tick = (): void => {
    if (inFlight >= s.maxInFlight) {
      counts.shed += 1;
      return;
    }
    const kind = random.weighted(Object.fromEntries(Object.entries(TASK_KINDS).map(([k, v]) => [k, v.weight])) as Record<KindName, number>);
    const [lo, hi] = TASK_KINDS[kind].sleepMs;
    const key = `${s.runId}-${s.name}-${++seq}`;
    counts.submitted += 1;
    byKind[kind] = (byKind[kind] ?? 0) + 1;
    inFlight += 1;
    void submitUntilAcked(key, kind, random.int(lo, hi)).finally(() => (inFlight -= 1));
  };

  let timer: NodeJS.Timeout | undefined;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    finishBy = Date.now() + s.finishMs;
    if (timer !== undefined) clearInterval(timer);
    for (const [taskId, t] of waitingCancels) {
      clearTimeout(t);
      cancel(taskId);
    }
    while ((inFlight > 0 || cancelsInFlight.size > 0) && Date.now() < finishBy + 5_000) await sleep(50);
    emit('done', { ...counts, inFlight, failures, byKind });
    producer.close();
    process.exit(0);
  };

  emit('ready', { pid: process.pid });
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'go' && timer === undefined && !stopping) timer = setInterval(tick, 1_000 / s.ratePerSec);
    if (line.trim() === 'stop') void stop();
  });
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  emit('error', { message: String(err instanceof Error ? err.stack : err) });
  process.exit(1);
});
