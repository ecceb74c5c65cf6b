import { createHash } from 'node:crypto';
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
  /** Set only on a remembered copy (`remembered`): the SHA-256 of a result too large to keep; `result` is then null. */
  resultSha256?: string;
}

/** Results up to this size are kept as they are in remembered updates; larger ones by their SHA-256. */
const KEEP_RESULT_BYTES = 64;

/**
 * The copy of an update that a session keeps to recognise resends (the
 * sequence window, the last accepted, the recently finished): a large result
 * is kept as its SHA-256, so a worker cannot pin window-size times its
 * largest results in memory. Deterministic (no clock, no randomness).
 */
export function remembered(update: WorkerUpdate): WorkerUpdate {
  const result = update.result;
  if (result === null || result.byteLength <= KEEP_RESULT_BYTES) return update;
  return { ...update, result: null, resultSha256: createHash('sha256').update(result).digest('hex') };
}

function sameResult(a: WorkerUpdate, b: WorkerUpdate): boolean {
  if (a.resultSha256 === undefined && b.resultSha256 === undefined) return bytesEqual(a.result, b.result);
  const digest = (u: WorkerUpdate): string => u.resultSha256 ?? (u.result !== null && u.result.byteLength > 0 ? createHash('sha256').update(u.result).digest('hex') : '');
  return digest(a) === digest(b);
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
    sameResult(a, b)
  );
}
