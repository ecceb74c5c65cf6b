import type { TaskRecord } from './task-fields';

/**
 * Which ready tasks a claim may take, and in which order: one fact, which
 * every store states in its own language (the memory store with these
 * functions, the SQL stores in their claim statements); the contract suite
 * checks that they agree.
 *
 * A ready task is PENDING with `readyAtMs <= now`. For sessions of zone Z on
 * a dispatcher of zone D, a ready task may be taken at once when
 * - it prefers Z, or
 * - it prefers no zone and was accepted by a dispatcher of zone '' , D or Z
 *   (its producer is near: xDS sent it to its own zone's dispatcher).
 * Any other ready task may be taken once it has been ready for the spillover
 * delay (`readyAtMs + delay <= now`). Within each of the two, higher priority
 * first, then first queued first.
 */
export function takesAtOnce(task: Pick<TaskRecord, 'preferredZone' | 'acceptedZone'>, zone: string, dispatcherZone: string): boolean {
  if (task.preferredZone !== '') return task.preferredZone === zone;
  return task.acceptedZone === '' || task.acceptedZone === dispatcherZone || task.acceptedZone === zone;
}

/** 1: claimable at once; 2: claimable because its spillover delay passed; 0: not claimable now. */
export function claimPhase(
  task: Pick<TaskRecord, 'state' | 'readyAtMs' | 'preferredZone' | 'acceptedZone'>,
  zone: string,
  dispatcherZone: string,
  nowMs: number,
  spilloverDelayMs: number,
): 0 | 1 | 2 {
  if (task.state !== 'PENDING' || task.readyAtMs > nowMs) return 0;
  if (takesAtOnce(task, zone, dispatcherZone)) return 1;
  return task.readyAtMs + spilloverDelayMs <= nowMs ? 2 : 0;
}

/**
 * When a PENDING task that is not claimable now becomes claimable for the
 * zone: its ready time, or its ready time plus the spillover delay.
 */
export function claimableAtMs(task: Pick<TaskRecord, 'readyAtMs' | 'preferredZone' | 'acceptedZone'>, zone: string, dispatcherZone: string, spilloverDelayMs: number): number {
  return takesAtOnce(task, zone, dispatcherZone) ? task.readyAtMs : task.readyAtMs + spilloverDelayMs;
}

/**
 * What a claim writes to a task it takes for one slot: ASSIGNED to the
 * claiming dispatcher under its lease, bound to the slot's session and
 * worker, with its attempt's deadline, at the next version. The in-process
 * stores apply it with this function; the SQL stores state it in their
 * claim statements.
 */
export function claimInStore(
  task: TaskRecord,
  claim: { owner: string; dispatcherZone: string; leaseExpiresMs: number; nowMs: number },
  slot: { sessionId: string; workerId: string; zone: string },
): void {
  Object.assign(task, {
    state: 'ASSIGNED',
    owner: claim.owner,
    dispatcherZone: claim.dispatcherZone,
    leaseExpiresMs: claim.leaseExpiresMs,
    sessionId: slot.sessionId,
    workerId: slot.workerId,
    workerZone: slot.zone,
    attemptDeadlineMs: claim.nowMs + task.attemptTimeoutMs,
    progressPermille: 0,
    version: task.version + 1,
    updatedMs: claim.nowMs,
  } satisfies Partial<TaskRecord>);
}
