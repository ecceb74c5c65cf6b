import type { ErrorInfo } from '../errors';
import { decodeError, decodeTaskState } from '../protocol/codec';
import type { TaskState } from '../core/task-state';
import type { WireTaskInfo } from '../protocol/wire';

/** A task as the SDK returns it. */
export interface TaskInfo {
  taskId: string;
  state: TaskState;
  queue: string;
  priority: number;
  attempt: number;
  maxAttempts: number;
  version: number;
  payload: Buffer;
  contentType: string;
  /** Set once COMPLETED (may be empty). */
  result: Buffer | null;
  error: ErrorInfo | null;
  progressPermille: number;
  labels: Record<string, string>;
  preferredZone: string;
  workerId: string;
  createdMs: number;
  updatedMs: number;
  notBeforeMs: number;
}

export function toTaskInfo(wire: WireTaskInfo): TaskInfo {
  const state = decodeTaskState(wire.state) ?? 'PENDING';
  return {
    taskId: wire.taskId,
    state,
    queue: wire.queue,
    priority: wire.priority,
    attempt: wire.attempt,
    maxAttempts: wire.maxAttempts,
    version: wire.version,
    payload: wire.payload,
    contentType: wire.contentType,
    result: state === 'COMPLETED' ? wire.result : null,
    error: decodeError(wire.error),
    progressPermille: wire.progressPermille,
    labels: wire.labels,
    preferredZone: wire.preferredZone,
    workerId: wire.workerId,
    createdMs: wire.createdUnixMs,
    updatedMs: wire.updatedUnixMs,
    notBeforeMs: wire.notBeforeUnixMs,
  };
}
