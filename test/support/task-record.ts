import type { TaskRecord } from '../../src/core/task-fields';

/** A PENDING, unowned task record, ready since `createdMs`; override what the test is about. Shared by store and core tests. */
export function taskRecord(id: string, overrides: Partial<TaskRecord> = {}, createdMs = 1_700_000_000_000): TaskRecord {
  return {
    id,
    queue: 'q',
    priority: 0,
    payload: new Uint8Array([1, 2, 3]),
    contentType: 'application/octet-stream',
    labels: {},
    preferredZone: '',
    producerZone: '',
    acceptedZone: '',
    idempotencyKey: '',
    maxAttempts: 3,
    attemptTimeoutMs: 30_000,
    scheduleToStartTimeoutMs: 0,
    createdMs,
    state: 'PENDING',
    attempt: 1,
    version: 1,
    owner: '',
    dispatcherZone: '',
    leaseExpiresMs: 0,
    sessionId: '',
    workerId: '',
    workerZone: '',
    attemptDeadlineMs: 0,
    progressPermille: 0,
    result: null,
    error: null,
    notBeforeMs: 0,
    readyAtMs: createdMs,
    startDeadlineMs: 0,
    updatedMs: createdMs,
    ...overrides,
  };
}
