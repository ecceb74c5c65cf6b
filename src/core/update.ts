import type { ErrorInfo } from '../errors';
import type { TaskState } from './task-state';

/** A TaskUpdate as decoded from the wire. `status` is unchecked until the rules see it. */
export interface WorkerUpdate {
  taskId: string;
  attempt: number;
  status: string;
  sequenceId: number;
  version: number;
  progressPermille: number;
  result: Uint8Array | null;
  error: ErrorInfo | null;
}

export type AckResult = 'ACCEPTED' | 'DUPLICATE' | 'REJECTED';

/** The answer to one update; see docs/protocol.md for every reason. */
export interface UpdateAckOut {
  sequenceId: number;
  taskId: string;
  result: AckResult;
  reason: string;
  message: string;
  /** The task's state after the update was considered ('' when unknown). */
  state: TaskState | '';
  version: number;
}

function bytesEqual(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return (a === null || a.byteLength === 0) && (b === null || b.byteLength === 0);
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when `b` resends `a`: same task, attempt, status, version and content (the sequence id may differ). */
export function sameUpdate(a: WorkerUpdate, b: WorkerUpdate): boolean {
  return (
    a.taskId === b.taskId &&
    a.attempt === b.attempt &&
    a.status === b.status &&
    a.version === b.version &&
    a.progressPermille === b.progressPermille &&
    (a.error?.reason ?? '') === (b.error?.reason ?? '') &&
    (a.error?.message ?? '') === (b.error?.message ?? '') &&
    bytesEqual(a.result, b.result)
  );
}
