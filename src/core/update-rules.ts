import type { Engine } from './engine';
import { holdKey, type Hold, type SessionState } from './session';
import type { TaskRecord } from './task-fields';
import { isTerminal, isWorkerStatus } from './task-state';
import { sameUpdate, type UpdateAckOut, type WorkerUpdate } from './update';

/**
 * The largest sequence_id and version a worker may send: 2^53-1, the largest
 * integer a JS number holds exactly. The proto's uint64 allows more; the
 * dispatcher refuses it (INVALID_UPDATE) instead of rounding it.
 */
export const MAX_WIRE_INTEGER = Number.MAX_SAFE_INTEGER;

/**
 * How far the versions of one attempt may rise above the version its
 * Assignment carried: 2^42 (about 4.4e12, room for a version per millisecond
 * for 139 years). The dispatcher adds at most 2 per attempt (assignment, then
 * retry or end), and a task has at most MAX_ATTEMPTS (1000) attempts, so a
 * task's version stays below 1 + 1000 * (2^42 + 2) < 2^53-1: whatever one
 * attempt's worker sends, every later attempt starts with its full range.
 */
export const ATTEMPT_VERSION_SPAN = 2 ** 42;

export type UpdateDecision =
  | { kind: 'answer'; ack: UpdateAckOut; record: boolean }
  | { kind: 'apply'; task: TaskRecord; hold: Hold };

type LookupTasks = Pick<Engine, 'getTask' | 'finishedTask' | 'releaseOrphan'>;

/** What the rules need to know of a task: a live record, or the summary of a finished one. */
type TaskView = Pick<TaskRecord, 'id' | 'state' | 'version' | 'attempt' | 'sessionId'>;

function answer(update: WorkerUpdate, result: UpdateAckOut['result'], reason: string, message: string, task?: TaskView, record = true): UpdateDecision {
  return {
    kind: 'answer',
    record,
    ack: {
      sequenceId: update.sequenceId,
      taskId: update.taskId,
      result,
      reason,
      message,
      state: task?.state ?? '',
      version: task?.version ?? 0,
    },
  };
}

function duplicateOf(update: WorkerUpdate, previous: UpdateAckOut): UpdateDecision {
  return { kind: 'answer', record: true, ack: { ...previous, sequenceId: update.sequenceId, result: previous.result === 'REJECTED' ? 'REJECTED' : 'DUPLICATE' } };
}

/** Bounds of what a worker reports (docs/security.md, "Bounds"). */
export const UPDATE_LIMITS = {
  maxTaskIdChars: 128,
  /** A result larger than this is refused: GetTask and WatchTask must still carry payload and result in one message. */
  maxResultBytes: 16 * 1024 * 1024,
  maxErrorReasonChars: 128,
  maxErrorMessageChars: 4096,
} as const;

function fieldProblem(update: WorkerUpdate): string | undefined {
  if (update.taskId === '') return 'task_id is empty';
  if (update.taskId.length > UPDATE_LIMITS.maxTaskIdChars) return `task_id is longer than ${UPDATE_LIMITS.maxTaskIdChars} characters`;
  if (update.result !== null && update.result.byteLength > UPDATE_LIMITS.maxResultBytes) return `result is ${update.result.byteLength} bytes; at most ${UPDATE_LIMITS.maxResultBytes} are kept (store large results elsewhere and return a reference)`;
  if (update.error !== null && update.error.reason.length > UPDATE_LIMITS.maxErrorReasonChars) return `error.reason is longer than ${UPDATE_LIMITS.maxErrorReasonChars} characters`;
  if (update.error !== null && update.error.message.length > UPDATE_LIMITS.maxErrorMessageChars) return `error.message is longer than ${UPDATE_LIMITS.maxErrorMessageChars} characters`;
  if (!isWorkerStatus(update.status)) return `status ${update.status} is not one a worker may report (RUNNING, COMPLETED, FAILED, CANCELLED)`;
  if (!Number.isSafeInteger(update.attempt) || update.attempt < 1) return 'attempt must be >= 1';
  if (!Number.isSafeInteger(update.version) || update.version < 1) return `version must be >= 1 and at most ${MAX_WIRE_INTEGER} (2^53-1)`;
  if (!Number.isInteger(update.progressPermille) || update.progressPermille < 0 || update.progressPermille > 1000) {
    return 'progress_permille must be 0..1000';
  }
  return undefined;
}

/**
 * The update rules, in the order they are checked (docs/protocol.md):
 * 1. sequence_id: next, resend (answered again), gap or regression (rejected, not consumed);
 * 2. fields are valid;
 * 3. an identical resend of the last accepted update is re-acknowledged;
 * 4. fencing: only the session holding the task's current attempt may change it;
 * 5. version strictly increases; terminal states are locked;
 * 6. the transition is allowed.
 */
export function decideUpdate(tasks: LookupTasks, session: SessionState, update: WorkerUpdate): UpdateDecision {
  // A live task, or a finished one that already left memory: acks carry its state and version.
  const task: TaskView | undefined = tasks.getTask(update.taskId) ?? tasks.finishedTask(update.taskId);
  if (!Number.isSafeInteger(update.sequenceId) || update.sequenceId < 1) {
    return answer(update, 'REJECTED', 'INVALID_UPDATE', `sequence_id must be >= 1 and at most ${MAX_WIRE_INTEGER} (2^53-1); it was not consumed`, task, false);
  }
  const seq = session.sequence.check(update);
  if (seq.kind === 'gap') {
    return answer(update, 'REJECTED', 'SEQUENCE_GAP', `expected sequence_id ${seq.expected}, got ${update.sequenceId}; resend the missing updates in order`, task, false);
  }
  if (seq.kind === 'regression') return answer(update, 'REJECTED', 'SEQUENCE_REGRESSION', seq.message, task, false);
  if (seq.kind === 'resend') return { kind: 'answer', record: false, ack: seq.ack.result === 'ACCEPTED' ? { ...seq.ack, result: 'DUPLICATE' } : seq.ack };

  const problem = fieldProblem(update);
  if (problem !== undefined) return answer(update, 'REJECTED', 'INVALID_UPDATE', problem, task);

  const finished = session.recentFinished.get(update.taskId);
  if (finished !== undefined && sameUpdate(finished.update, update)) return duplicateOf(update, finished.ack);

  const hold = session.holds.get(holdKey(update.taskId, update.attempt));

  if (hold === undefined) {
    if (task !== undefined && task.sessionId === session.id && task.attempt !== update.attempt) {
      return answer(update, 'REJECTED', 'FENCED', `attempt ${update.attempt} is not current; this session holds attempt ${task.attempt}`, task);
    }
    if (task !== undefined && isTerminal(task.state)) {
      return answer(update, 'REJECTED', 'TERMINAL', `task is ${task.state}; its version ${task.version} is locked`, task);
    }
    if (task !== undefined && task.attempt !== update.attempt) {
      return answer(update, 'REJECTED', 'FENCED', `attempt ${update.attempt} was taken away; attempt ${task.attempt} is current`, task);
    }
    return answer(update, 'REJECTED', 'NOT_HELD', `task ${update.taskId} attempt ${update.attempt} is not held by this session`, task);
  }

  if (hold.orphan) {
    // The attempt was taken away (cancel, timeout, another dispatcher's change) while the worker still ran it.
    const final = update.status !== 'RUNNING';
    if (final) tasks.releaseOrphan(session, hold.taskId, hold.attempt);
    if (update.status === 'CANCELLED' && (task === undefined ? hold.orphanReason === 'CANCELLED' : task.state === 'CANCELLED')) {
      return answer(update, 'ACCEPTED', '', 'cancellation confirmed; slot released', task);
    }
    if (task !== undefined && isTerminal(task.state)) {
      return answer(update, 'REJECTED', 'TERMINAL', `task is ${task.state}; ${final ? 'slot released' : 'stop working on it'}`, task);
    }
    // Not in memory: the task waits in the store (or another dispatcher holds it); the ack is completed from the store.
    const current = task === undefined ? '' : `; attempt ${task.attempt} is current`;
    return answer(update, 'REJECTED', 'FENCED', `attempt ${hold.attempt} was taken away${current}${final ? '; slot released' : ''}`, task);
  }

  // Checked after the orphan case: a resend from an attempt that was taken away is fenced, not re-acknowledged.
  if (hold.lastAccepted !== undefined && sameUpdate(hold.lastAccepted.update, update)) return duplicateOf(update, hold.lastAccepted.ack);

  // Invariant: a live hold's task is in memory, held by this session, at this attempt.
  const live = tasks.getTask(update.taskId);
  if (live === undefined || live.sessionId !== session.id || live.attempt !== update.attempt) {
    return answer(update, 'REJECTED', 'NOT_HELD', `task ${update.taskId} attempt ${update.attempt} is not held by this session`, task);
  }
  if (update.version <= live.version) {
    return answer(update, 'REJECTED', 'STALE_VERSION', `version ${update.version} is at or below the task's version ${live.version}`, live);
  }
  const lastVersion = hold.assignedVersion + ATTEMPT_VERSION_SPAN;
  if (update.version > lastVersion) {
    return answer(
      update,
      'REJECTED',
      'INVALID_UPDATE',
      `version ${update.version} is out of this attempt's range ${hold.assignedVersion + 1}..${lastVersion} (the Assignment's version + 1 .. + 2^42); count up from the Assignment's version`,
      live,
    );
  }
  if (update.status === 'CANCELLED') {
    return answer(update, 'REJECTED', 'INVALID_TRANSITION', 'a worker may report CANCELLED only after a Cancel; to give up, report FAILED with retryable=false', live);
  }
  return { kind: 'apply', task: live, hold };
}

/** Whether the rules answered without knowing the task, so the store may know more (see withStoredTask). */
export function answeredWithoutTask(ack: UpdateAckOut): boolean {
  return ack.state === '' && ack.taskId !== '';
}

/**
 * Completes an answer the rules gave without knowing the task (state '',
 * because it is in neither memory nor the recently-finished list: it waits
 * in the store, another dispatcher holds it, or it finished long ago) with
 * what the store says of it: a late update for a task that finished gets
 * `TERMINAL` with the final state and version; one for an attempt that is no
 * longer current gets `FENCED`; any other answer just gains the state and
 * version.
 */
export function withStoredTask(ack: UpdateAckOut, task: TaskView, attempt: number): UpdateAckOut {
  if (ack.state !== '') return ack;
  const completed = { ...ack, state: task.state, version: task.version };
  if (ack.result !== 'REJECTED' || (ack.reason !== 'NOT_HELD' && ack.reason !== 'FENCED')) return completed;
  if (isTerminal(task.state)) return { ...completed, reason: 'TERMINAL', message: `task is ${task.state}; its version ${task.version} is locked` };
  if (task.attempt !== attempt) return { ...completed, reason: 'FENCED', message: `attempt ${attempt} was taken away; attempt ${task.attempt} is current` };
  return completed;
}
