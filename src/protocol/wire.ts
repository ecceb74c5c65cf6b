/**
 * The decoded shapes of proto/zonal/v1/dispatcher.proto as @grpc/proto-loader
 * produces them with LOADER_OPTIONS (camelCase fields, enums as strings,
 * bytes as Buffer, `kind` naming the set oneof). Only src/protocol and the
 * raw test client depend on these shapes.
 *
 * The task's own fields (SubmitRequest, TaskInfo, Assignment) are derived
 * from the field table, core/task-fields.ts.
 *
 * 64-bit integers: the dispatcher decodes what it receives with them as exact
 * decimal strings, clients decode numbers (see service.ts). Fields a
 * dispatcher receives are typed `U64`; the codec narrows them to numbers in
 * their documented ranges (docs/protocol.md).
 */
import type { TASK_FIELDS, TaskField } from '../core/task-fields';

export type U64 = number | string;

export type WireTaskState = 'TASK_STATE_UNSPECIFIED' | 'PENDING' | 'ASSIGNED' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

export interface WireError {
  code: number;
  reason: string;
  message: string;
  retryable: boolean;
}

/** The wire type of each field kind (core/task-fields.ts); received uint64 fields are `U64`. */
interface WireKind {
  text: string;
  int: number;
  bytes: Buffer;
  'bytes?': Buffer;
  labels: Record<string, string>;
  'error?': WireError | null;
  state: WireTaskState;
}

type Fields = typeof TASK_FIELDS;

/** SubmitRequest: every field of the table with a `submit` name. */
export type WireSubmitRequest = {
  [K in TaskField as Fields[K] extends { submit: { wire: infer W extends string } } ? W : never]: Fields[K] extends { submit: { u64: true } } ? U64 : WireKind[Fields[K]['kind']];
};

export interface WireSubmitResponse {
  taskId: string;
  deduplicated: boolean;
  servedBy: string;
}

export interface WireSubmitResult {
  taskId: string;
  deduplicated: boolean;
  error: WireError | null;
}

/** TaskInfo: every field of the table with an `info` name. */
export type WireTaskInfo = { [K in TaskField as Fields[K] extends { info: infer W extends string } ? W : never]: WireKind[Fields[K]['kind']] };

export interface WireHello {
  workerId: string;
  zone: string;
  labels: Record<string, string>;
  slots: number;
  queues: string[];
}

export interface WireTaskUpdate {
  taskId: string;
  attempt: number;
  status: WireTaskState;
  sequenceId: U64;
  version: U64;
  progressPermille: number;
  result: Buffer;
  error: WireError | null;
}

/** Ping and Pong: the receiver echoes `nonce` and `sent_unix_ms` exactly. */
export interface WirePing {
  nonce: U64;
  sentUnixMs: U64;
}

export type WireWorkerMessage =
  | { kind: 'hello'; hello: WireHello }
  | { kind: 'setSlots'; setSlots: { slots: number } }
  | { kind: 'updates'; updates: { updates: WireTaskUpdate[] } }
  | { kind: 'ping'; ping: WirePing }
  | { kind: 'pong'; pong: WirePing }
  | { kind: 'drain'; drain: { reason: string } };

export interface WireWelcome {
  sessionId: string;
  heartbeatIntervalMs: number;
  idleTimeoutMs: number;
  drainGraceMs: number;
  dispatcherId: string;
  dispatcherZone: string;
}

/** Assignment: every field of the table with an `assignment` name. */
export type WireAssignment = { [K in TaskField as Fields[K] extends { assignment: infer W extends string } ? W : never]: WireKind[Fields[K]['kind']] };

export interface WireUpdateAck {
  sequenceId: U64;
  taskId: string;
  result: 'ACK_RESULT_UNSPECIFIED' | 'ACCEPTED' | 'DUPLICATE' | 'REJECTED';
  reason: string;
  message: string;
  state: WireTaskState;
  version: number;
}

export interface WireCancel {
  taskId: string;
  attempt: number;
  reason: string;
}

export interface WireGoAway {
  reason: string;
  drainDeadlineUnixMs: number;
}

export type WireDispatcherMessage =
  | { kind: 'welcome'; welcome: WireWelcome }
  | { kind: 'assignments'; assignments: { assignments: WireAssignment[] } }
  | { kind: 'acks'; acks: { acks: WireUpdateAck[] } }
  | { kind: 'cancel'; cancel: WireCancel }
  | { kind: 'ping'; ping: WirePing }
  | { kind: 'pong'; pong: WirePing }
  | { kind: 'goAway'; goAway: WireGoAway }
  | { kind: 'keepalive'; keepalive: { heartbeatIntervalMs: number; idleTimeoutMs: number } };

/** What a writer may pass: proto-loader fills defaults for omitted fields. */
export type Outgoing<T> = { [K in keyof T]?: T[K] extends object ? Partial<T[K]> | T[K] : T[K] };
