import type { ErrorInfo } from '../errors';
import { decodeError, decodeTaskState } from '../protocol/codec';
import { FIELD_LIST, type TASK_FIELDS, type TaskField } from '../core/task-fields';
import type { TaskState } from '../core/task-state';
import type { WireError, WireTaskInfo, WireTaskState } from '../protocol/wire';

/** The SDK type of each field kind (core/task-fields.ts). */
interface SdkKind {
  text: string;
  int: number;
  bytes: Buffer;
  'bytes?': Buffer | null;
  labels: Record<string, string>;
  'error?': ErrorInfo | null;
  state: TaskState;
}

type Fields = typeof TASK_FIELDS;

/**
 * A task as the SDK returns it: every field TaskInfo carries, under the field
 * table's names (`taskId` for the id). `result` is set once COMPLETED (it may
 * be empty) and null otherwise.
 */
export type TaskInfo = { taskId: string } & {
  [K in TaskField as K extends 'id' ? never : Fields[K] extends { info: string } ? K : never]: SdkKind[Fields[K]['kind']];
};

const INFO_FIELDS = FIELD_LIST.filter((f) => f.info !== undefined && f.name !== 'id');

export function toTaskInfo(wire: WireTaskInfo): TaskInfo {
  const fields = wire as unknown as Record<string, unknown>;
  const state = decodeTaskState(wire.state) ?? 'PENDING';
  const out: Record<string, unknown> = { taskId: wire.taskId };
  for (const field of INFO_FIELDS) {
    const value = fields[field.info!];
    switch (field.kind) {
      case 'state':
        out[field.name] = decodeTaskState(value as WireTaskState) ?? 'PENDING';
        break;
      case 'error?':
        out[field.name] = decodeError(value as WireError | null);
        break;
      case 'bytes?':
        out[field.name] = state === 'COMPLETED' ? value : null;
        break;
      default:
        out[field.name] = value;
    }
  }
  return out as TaskInfo;
}
