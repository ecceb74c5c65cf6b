import type { TaskRecord } from '../../src/core/task';

/** A PENDING task record; override what the test is about. Shared by store and core tests. */
export function taskRecord(id: string, overrides: Partial<TaskRecord> = {}, createdMs = 1_700_000_000_000): TaskRecord {
  return {
    id,
    queue: 'q',
    priority: 0,
    payload: new Uint8Array([1, 2, 3]),
    contentType: 'application/octet-stream',
    labels: {},
    preferredZone: '',
    idempotencyKey: '',
    state: 'PENDING',
    attempt: 1,
    maxAttempts: 3,
    version: 1,
    attemptTimeoutMs: 30_000,
    scheduleToStartTimeoutMs: 0,
    notBeforeMs: 0,
    createdMs,
    updatedMs: createdMs,
    sessionId: '',
    workerId: '',
    attemptDeadlineMs: 0,
    progressPermille: 0,
    result: null,
    error: null,
    seq: 1,
    ...overrides,
  };
}
