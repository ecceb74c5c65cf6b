/**
 * The task lifecycle. The table below is the single source of truth; it is
 * reproduced in docs/protocol.md.
 *
 *   PENDING  -> ASSIGNED            dispatch to a session with a free slot
 *   PENDING  -> FAILED              schedule-to-start timeout
 *   PENDING  -> CANCELLED           CancelTask
 *   ASSIGNED -> RUNNING             worker update RUNNING
 *   ASSIGNED|RUNNING -> RUNNING     progress (version still strictly increases)
 *   ASSIGNED|RUNNING -> COMPLETED   worker update COMPLETED
 *   ASSIGNED|RUNNING -> FAILED      worker update FAILED that is not retried, or attempts exhausted
 *   ASSIGNED|RUNNING -> PENDING     retry: lease lost, attempt timeout, retryable failure (attempt+1)
 *   ASSIGNED|RUNNING -> CANCELLED   CancelTask (the worker is told with Cancel)
 *
 * Invariant: COMPLETED, FAILED and CANCELLED are terminal; nothing leaves them.
 */
export type TaskState = 'PENDING' | 'ASSIGNED' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

export const TASK_STATES: readonly TaskState[] = ['PENDING', 'ASSIGNED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'];

const TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  PENDING: ['ASSIGNED', 'FAILED', 'CANCELLED'],
  ASSIGNED: ['RUNNING', 'COMPLETED', 'FAILED', 'PENDING', 'CANCELLED'],
  RUNNING: ['RUNNING', 'COMPLETED', 'FAILED', 'PENDING', 'CANCELLED'],
  COMPLETED: [],
  FAILED: [],
  CANCELLED: [],
};

export function isTerminal(state: TaskState): boolean {
  return state === 'COMPLETED' || state === 'FAILED' || state === 'CANCELLED';
}

export function canTransition(from: TaskState, to: TaskState): boolean {
  return TRANSITIONS[from].includes(to);
}

export function allowedTransitions(from: TaskState): readonly TaskState[] {
  return TRANSITIONS[from];
}

/** Statuses a worker may report in a TaskUpdate. */
export type WorkerStatus = 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

export function isWorkerStatus(value: string): value is WorkerStatus {
  return value === 'RUNNING' || value === 'COMPLETED' || value === 'FAILED' || value === 'CANCELLED';
}
