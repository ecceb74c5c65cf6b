import { describe, expect, it } from 'vitest';
import {
  allowedTransitions,
  canTransition,
  isTerminal,
  isWorkerStatus,
  TASK_STATES,
  type TaskState,
} from '../../src/core/task-state';
import { errorInfo } from '../../src/errors';
import { createHarness, submitAndAssign } from '../support/core-harness';

/** The lifecycle from the issue, written out independently of the source table. */
const ALLOWED = new Set<string>([
  'PENDING>ASSIGNED',
  'PENDING>FAILED',
  'PENDING>CANCELLED',
  'ASSIGNED>RUNNING',
  'ASSIGNED>COMPLETED',
  'ASSIGNED>FAILED',
  'ASSIGNED>PENDING',
  'ASSIGNED>CANCELLED',
  'RUNNING>RUNNING',
  'RUNNING>COMPLETED',
  'RUNNING>FAILED',
  'RUNNING>PENDING',
  'RUNNING>CANCELLED',
]);

const ALL_PAIRS: [TaskState, TaskState, boolean][] = [];
for (const from of TASK_STATES) {
  for (const to of TASK_STATES) ALL_PAIRS.push([from, to, ALLOWED.has(`${from}>${to}`)]);
}

describe('task state table', () => {
  it('has exactly the six lifecycle states', () => {
    expect([...TASK_STATES]).toEqual(['PENDING', 'ASSIGNED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED']);
  });

  it.each(ALL_PAIRS)('%s -> %s allowed=%s', (from, to, allowed) => {
    expect(canTransition(from, to)).toBe(allowed);
    expect(allowedTransitions(from).includes(to)).toBe(allowed);
  });

  it('allows exactly 13 transitions in total', () => {
    const count = TASK_STATES.reduce((n, s) => n + allowedTransitions(s).length, 0);
    expect(count).toBe(13);
  });

  it.each([
    ['PENDING', false],
    ['ASSIGNED', false],
    ['RUNNING', false],
    ['COMPLETED', true],
    ['FAILED', true],
    ['CANCELLED', true],
  ] as [TaskState, boolean][])('isTerminal(%s) is %s', (state, terminal) => {
    expect(isTerminal(state)).toBe(terminal);
    // Invariant: terminal iff nothing leaves it.
    expect(allowedTransitions(state).length === 0).toBe(terminal);
  });

  it.each([
    ['RUNNING', true],
    ['COMPLETED', true],
    ['FAILED', true],
    ['CANCELLED', true],
    ['PENDING', false],
    ['ASSIGNED', false],
    ['running', false],
    ['', false],
    ['UNKNOWN', false],
  ] as [string, boolean][])('isWorkerStatus(%j) is %s', (status, ok) => {
    expect(isWorkerStatus(status)).toBe(ok);
  });
});

describe('task state machine driven through the engine', () => {
  it('walks PENDING -> ASSIGNED -> RUNNING -> RUNNING -> COMPLETED with a strictly increasing version', () => {
    const h = createHarness();
    const w = h.open({ slots: 1 });
    const task = h.submit();
    expect([task.state, task.attempt, task.version]).toEqual(['PENDING', 1, 1]);

    const [a] = h.dispatch();
    expect(a).toMatchObject({ taskId: task.id, attempt: 1, version: 2 });
    expect([task.state, task.version, task.sessionId]).toEqual(['ASSIGNED', 2, w.id]);

    expect(w.running(a!, 3, 100)).toMatchObject({ result: 'ACCEPTED', state: 'RUNNING', version: 3 });
    expect(w.running(a!, 4, 500)).toMatchObject({ result: 'ACCEPTED', state: 'RUNNING', version: 4 });
    expect(task.progressPermille).toBe(500);
    const result = new Uint8Array([7, 7]);
    expect(w.complete(a!, 5, result)).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: 5 });
    expect([task.state, task.version, task.sessionId, task.attemptDeadlineMs]).toEqual(['COMPLETED', 5, '', 0]);
    expect(task.result).toEqual(result);
    expect(task.error).toBeNull();
  });

  it('ASSIGNED -> COMPLETED directly is allowed', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w);
    expect(w.complete(a, 3)).toMatchObject({ result: 'ACCEPTED', state: 'COMPLETED', version: 3 });
  });

  it('ASSIGNED -> FAILED on a non-retryable worker failure', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w);
    const ack = w.fail(a, 3, { ...errorInfo('HANDLER_FAILED', 'bad input'), retryable: false });
    expect(ack).toMatchObject({ result: 'ACCEPTED', state: 'FAILED', version: 3 });
    expect(a.task.error).toMatchObject({ reason: 'HANDLER_FAILED', message: 'bad input', retryable: false });
  });

  it('ASSIGNED -> PENDING when the lease is lost, RUNNING -> PENDING on timeout', () => {
    const h = createHarness();
    const w1 = h.open();
    const a = submitAndAssign(h, w1, { attemptTimeoutMs: 1000 });
    h.close(w1);
    expect([a.task.state, a.task.attempt, a.task.version]).toEqual(['PENDING', 2, 3]);

    const w2 = h.open();
    const [b] = h.dispatch();
    expect(b).toMatchObject({ sessionId: w2.id, attempt: 2, version: 4 });
    w2.running(b!, 5);
    h.advance(1000);
    expect([a.task.state, a.task.attempt, a.task.version]).toEqual(['PENDING', 3, 6]);
  });

  it('PENDING -> FAILED (schedule-to-start) and PENDING -> CANCELLED', () => {
    const h = createHarness();
    const t1 = h.submit({ scheduleToStartTimeoutMs: 10 });
    const t2 = h.submit();
    h.advance(10);
    expect([t1.state, t1.version, t1.error?.reason]).toEqual(['FAILED', 2, 'SCHEDULE_TO_START_TIMEOUT']);
    expect(h.cancel(t2.id)).toEqual({ state: 'CANCELLED', cancelled: true });
    expect([t2.state, t2.version]).toEqual(['CANCELLED', 2]);
  });

  it('refuses a worker-reported CANCELLED without a Cancel (no RUNNING -> CANCELLED by the worker)', () => {
    const h = createHarness();
    const w = h.open();
    const a = submitAndAssign(h, w);
    w.running(a, 3);
    h.dirtyIds();
    const ack = w.cancelled(a, 4);
    expect(ack).toMatchObject({ result: 'REJECTED', reason: 'INVALID_TRANSITION', state: 'RUNNING', version: 3 });
    expect([a.task.state, a.task.version]).toEqual(['RUNNING', 3]);
    expect(h.dirtyIds()).toEqual([]);
  });

  it.each(['COMPLETED', 'FAILED', 'CANCELLED'] as const)('a %s task is immutable: no update, cancel, close or tick changes it', (terminal) => {
    const h = createHarness();
    const w = h.open({ slots: 2 });
    const a = submitAndAssign(h, w, { attemptTimeoutMs: 1000, scheduleToStartTimeoutMs: 500 });
    w.running(a, 3);
    if (terminal === 'COMPLETED') w.complete(a, 4);
    if (terminal === 'FAILED') w.fail(a, 4, { ...errorInfo('HANDLER_FAILED', 'no'), retryable: false });
    if (terminal === 'CANCELLED') h.cancel(a.taskId);
    const snapshot = { ...a.task };
    h.dirtyIds();

    expect(h.cancel(a.taskId)).toEqual({ state: terminal, cancelled: false });
    const late = w.running(a, 10);
    expect(late.result).toBe('REJECTED');
    expect(late.reason).toBe('TERMINAL');
    h.advance(60_000);
    h.close(w);
    h.dispatch();
    expect({ ...a.task }).toEqual(snapshot);
    expect(h.dirtyIds()).toEqual([]);
  });
});
