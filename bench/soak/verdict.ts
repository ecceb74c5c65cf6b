/**
 * The soak's verdict, from what the clients reported (the ledger) and what
 * the store holds at the end. Pure: no I/O.
 *
 * LOST: an acknowledged task the store does not know, or that is not
 * terminal after the drain. Must be 0.
 *
 * Invariants (each broken one is listed with examples):
 * - expected-state: the terminal state is the one the task's kind asks for
 *   (task-kinds.ts: expectedStates); a `fail` task ends FAILED with HANDLER_FAILED.
 * - idempotency: the stored task carries the key it was acknowledged under;
 *   no key named two tasks, no task was acknowledged under two keys, and no
 *   key is held by two tasks in the store.
 * - result-provenance: a COMPLETED task's result names an execution the
 *   workers reported, of the attempt the store holds.
 * - accepted-once: no task had COMPLETED accepted from two attempts, and an
 *   accepted COMPLETED is what the store holds.
 * - no-phantom-executions: every task a worker ran is in the store (an
 *   assignment goes out only once its task is durable).
 * - attempt-bound: no task used more attempts than its max_attempts.
 * - sdk-agrees-with-store: GetTask through the SDK answers the stored state.
 * - config-valid-only / config-converged: see config-churn.ts.
 * - faults-undone: every killed process came back, the database too.
 * - postgres-restarted: a run on a private cluster restarted it at least once.
 * - producers-finished: every producer reported its counts at the end.
 */
import type { Ack, CancelRecord, Execution, Ledger, Settle } from './ledger';
import type { StoredTask } from './store-reader';
import { expectedStates, parseResult, TASK_KINDS, type KindName } from './task-kinds';

export interface Break {
  invariant: string;
  count: number;
  examples: string[];
}

/** Everything known of a task an example names: what the producer and the workers reported, and the stored row. */
export interface Evidence {
  ack: Ack | undefined;
  cancel: CancelRecord | undefined;
  executions: (Execution & { at?: string })[];
  settles: (Settle & { at?: string })[];
  stored: StoredTask | undefined;
}

export interface VerdictInput {
  ledger: Ledger;
  stored: Map<string, StoredTask>;
  duplicateKeys: string[];
  /** GetTask answers for a sample of terminal tasks: the state the SDK saw. */
  sdkStates: Map<string, string>;
  /** Dispatcher reports of a version that was never a valid document (config-churn.ts). */
  configViolations: string[];
  /** Dispatchers whose version in force at the end is not the last document's. */
  configNotConverged: string[];
  faultFailures: string[];
  postgresRestartRequired: boolean;
  postgresRestarts: number;
  producersExpected: string[];
}

export interface Verdict {
  acknowledged: number;
  terminalByState: Record<string, number>;
  byKind: Record<string, { acknowledged: number; byState: Record<string, number> }>;
  lost: { count: number; notInStore: string[]; notTerminal: { taskId: string; state: string; attempt: number }[] };
  executions: {
    total: number;
    tasksExecuted: number;
    /** Tasks executed more than once (at-least-once). */
    reRuns: number;
    /** ... of which the kind asks for it (flaky, timeout) and no more. */
    reRunsByDesign: number;
    /** ... executed more often than their kind asks: what the faults cost. */
    reRunsByFaults: number;
    extraExecutionsByFaults: number;
    maxExecutionsOfOneTask: number;
  };
  settles: { accepted: number; duplicate: number; rejectedByReason: Record<string, number> };
  unacknowledged: { count: number; inStore: number; byState: Record<string, number> };
  breaks: Break[];
  /** By task id, for the tasks the breaks' examples name. */
  evidence: Record<string, Evidence>;
}

const EXAMPLES = 5;
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

function bump(map: Record<string, number>, key: string, by = 1): void {
  map[key] = (map[key] ?? 0) + by;
}

export function judge(input: VerdictInput): Verdict {
  const { ledger, stored } = input;
  const breaks = new Map<string, Break>();
  const evidence: Record<string, Evidence> = {};
  const broke = (invariant: string, example: string, taskId?: string): void => {
    const b = breaks.get(invariant) ?? { invariant, count: 0, examples: [] };
    b.count += 1;
    if (b.examples.length < EXAMPLES) {
      b.examples.push(example);
      if (taskId !== undefined) {
        const iso = <T extends { atMs?: number }>(x: T): T & { at?: string } => (x.atMs === undefined ? x : { ...x, at: new Date(x.atMs).toISOString() });
        evidence[taskId] = {
          ack: ledger.acks.get(taskId),
          cancel: ledger.cancels.get(taskId),
          executions: (ledger.executions.get(taskId) ?? []).map(iso),
          settles: (ledger.settles.get(taskId) ?? []).map(iso),
          stored: stored.get(taskId),
        };
      }
    }
    breaks.set(invariant, b);
  };

  const terminalByState: Record<string, number> = {};
  const byKind: Verdict['byKind'] = {};
  const notInStore: string[] = [];
  const notTerminal: Verdict['lost']['notTerminal'] = [];
  for (const [taskId, ack] of ledger.acks) {
    const kindRow = (byKind[ack.kind] ??= { acknowledged: 0, byState: {} });
    kindRow.acknowledged += 1;
    const task = stored.get(taskId);
    if (task === undefined) {
      notInStore.push(taskId);
      bump(kindRow.byState, 'UNKNOWN');
      continue;
    }
    bump(kindRow.byState, task.state);
    if (!TERMINAL.has(task.state)) {
      notTerminal.push({ taskId, state: task.state, attempt: task.attempt });
      continue;
    }
    bump(terminalByState, task.state);
    const expected = expectedStates(ack.kind, ledger.cancels.get(taskId));
    if (!expected.includes(task.state)) {
      broke('expected-state', `${taskId} (${ack.kind}, cancel ${JSON.stringify(ledger.cancels.get(taskId) ?? null)}): ${task.state} ${task.errorReason ?? ''} at attempt ${task.attempt}/${task.maxAttempts}, expected ${expected.join(' or ')}`, taskId);
    } else if (ack.kind === 'fail' && task.errorReason !== 'HANDLER_FAILED') {
      broke('expected-state', `${taskId} (fail): FAILED with ${task.errorReason}, expected HANDLER_FAILED`, taskId);
    }
    if (task.idempotencyKey !== ack.key) broke('idempotency', `${taskId} acknowledged under key ${ack.key} holds key ${task.idempotencyKey}`, taskId);
    if (task.attempt > task.maxAttempts) broke('attempt-bound', `${taskId}: attempt ${task.attempt} of ${task.maxAttempts}`, taskId);
    if (task.state === 'COMPLETED') {
      const origin = parseResult(task.result ?? '');
      const ran = ledger.executions.get(taskId) ?? [];
      if (origin === undefined) broke('result-provenance', `${taskId}: COMPLETED with result ${JSON.stringify(task.result)}, not a soak worker's`, taskId);
      else if (origin.attempt !== task.attempt) broke('result-provenance', `${taskId}: result of attempt ${origin.attempt} stored with attempt ${task.attempt}`, taskId);
      else if (!ran.some((x) => x.attempt === origin.attempt && x.workerId === origin.workerId)) broke('result-provenance', `${taskId}: result ${task.result} names no execution the workers reported`, taskId);
    }
    const accepted = (ledger.settles.get(taskId) ?? []).filter((x) => x.result === 'ACCEPTED' && x.status === 'COMPLETED');
    const acceptedAttempts = new Set(accepted.map((x) => x.attempt));
    if (acceptedAttempts.size > 1) broke('accepted-once', `${taskId}: COMPLETED accepted from attempts ${[...acceptedAttempts].join(', ')}`, taskId);
    for (const x of accepted) {
      if (task.state !== 'COMPLETED' || task.attempt !== x.attempt) broke('accepted-once', `${taskId}: COMPLETED of attempt ${x.attempt} accepted, the store holds ${task.state} at attempt ${task.attempt}`, taskId);
    }
  }
  for (const c of ledger.keyConflicts) broke('idempotency', `key ${c.key} acknowledged with tasks ${c.taskIds.join(' and ')}`);
  for (const s of ledger.sharedIds) broke('idempotency', `task ${s.taskId} acknowledged under keys ${s.keys.join(' and ')}`);
  for (const key of input.duplicateKeys) broke('idempotency', `the store has several tasks with key ${key}`);

  let total = 0;
  let reRuns = 0;
  let reRunsByDesign = 0;
  let reRunsByFaults = 0;
  let extraByFaults = 0;
  let maxExecutions = 0;
  for (const [taskId, runs] of ledger.executions) {
    total += runs.length;
    maxExecutions = Math.max(maxExecutions, runs.length);
    if (!stored.has(taskId)) {
      const run = runs[0]!;
      const keyTask = ledger.keys.get(run.key);
      broke(
        'no-phantom-executions',
        `${taskId} (key ${run.key}) ran at ${new Date(run.atMs).toISOString()} (attempt ${run.attempt} on ${run.workerId}, assigned by ${run.dispatcherId}) but the store does not know it; ` +
          `the key was acknowledged as ${keyTask ?? 'nothing'}${keyTask !== undefined && ledger.acks.get(keyTask) !== undefined ? ` at ${new Date(ledger.acks.get(keyTask)!.atMs).toISOString()} by ${ledger.acks.get(keyTask)!.servedBy} after ${ledger.acks.get(keyTask)!.tries} tries (${(ledger.acks.get(keyTask)!.history ?? []).join(', ')})` : ''}`,
        taskId,
      );
    }
    if (runs.length <= 1) continue;
    reRuns += 1;
    const kind = ledger.acks.get(taskId)?.kind;
    const designed = kind === undefined ? 1 : TASK_KINDS[kind as KindName].designedExecutions;
    if (runs.length <= designed) reRunsByDesign += 1;
    else {
      reRunsByFaults += 1;
      extraByFaults += runs.length - designed;
    }
  }

  for (const [taskId, sdkState] of input.sdkStates) {
    const task = stored.get(taskId);
    if (task !== undefined && sdkState !== task.state) broke('sdk-agrees-with-store', `${taskId}: GetTask answered ${sdkState}, the store holds ${task.state}`, taskId);
  }
  for (const v of input.configViolations) broke('config-valid-only', v);
  for (const v of input.configNotConverged) broke('config-converged', v);
  for (const f of input.faultFailures) broke('faults-undone', f);
  if (input.postgresRestartRequired && input.postgresRestarts === 0) broke('postgres-restarted', 'the run ended before its PostgreSQL restart');
  for (const p of input.producersExpected) if (!ledger.producerReports.has(p)) broke('producers-finished', `${p} did not report its counts (it died, or did not finish within its time)`);

  const settles: Verdict['settles'] = { accepted: 0, duplicate: 0, rejectedByReason: {} };
  for (const list of ledger.settles.values()) {
    for (const x of list) {
      if (x.result === 'ACCEPTED') settles.accepted += 1;
      else if (x.result === 'DUPLICATE') settles.duplicate += 1;
      else bump(settles.rejectedByReason, x.reason || 'unknown');
    }
  }
  const unackedByState: Record<string, number> = {};
  let unackedInStore = 0;
  const acknowledgedKeys = new Set(ledger.keys.keys());
  for (const task of stored.values()) {
    if (acknowledgedKeys.has(task.idempotencyKey)) continue;
    unackedInStore += 1;
    bump(unackedByState, task.state);
  }

  return {
    acknowledged: ledger.acks.size,
    terminalByState,
    byKind,
    lost: { count: notInStore.length + notTerminal.length, notInStore, notTerminal },
    executions: { total, tasksExecuted: ledger.executions.size, reRuns, reRunsByDesign, reRunsByFaults, extraExecutionsByFaults: extraByFaults, maxExecutionsOfOneTask: maxExecutions },
    settles,
    unacknowledged: { count: ledger.unacked.length, inStore: unackedInStore, byState: unackedByState },
    breaks: [...breaks.values()],
    evidence,
  };
}
