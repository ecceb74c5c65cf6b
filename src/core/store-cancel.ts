import type { ErrorInfo } from '../errors';
import type { TaskRecord } from './task-fields';

/**
 * What a store writes when it cancels a task whoever holds it (a cancel
 * through a dispatcher that does not hold the task): CANCELLED with the next
 * version, held by nobody, the attempt and the worker that had it kept for
 * the record. One fact: the in-process stores apply it with this function,
 * the SQL stores state it in their cancel-task statements, and the contract
 * suite checks that they agree.
 */
export function cancelInStore(task: TaskRecord, nowMs: number, error: ErrorInfo): void {
  Object.assign(task, {
    state: 'CANCELLED',
    owner: '',
    leaseExpiresMs: 0,
    sessionId: '',
    attemptDeadlineMs: 0,
    result: null,
    error: { ...error },
    version: task.version + 1,
    updatedMs: nowMs,
  } satisfies Partial<TaskRecord>);
}
