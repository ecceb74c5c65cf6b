import { HELD_STATES, TASK_COLUMNS } from './task-columns';

/**
 * SWEEP: what a sweep re-queues or fails, in one round trip (a dispatcher
 * sweeps every second, idle or not). Inputs: 1. owner, 2. now, 3. limit.
 * Output: PgTaskRows with `sweep_kind`, at most `limit` of each kind:
 *
 * - 'lease': tasks held by a dispatcher whose entry expired or is gone
 *   (never by $1, the caller), whose own claim lease has passed too;
 * - 'start': PENDING tasks past their schedule-to-start deadline, earliest
 *   first; the WHERE term repeats the partial index tasks_start_deadline.
 */
export const SWEEP = `
(SELECT 'lease' AS sweep_kind, ${TASK_COLUMNS} FROM tasks t
WHERE t.state IN ${HELD_STATES} AND t.owner <> $1 AND t.lease_expires_ms < $2
  AND NOT EXISTS (SELECT 1 FROM dispatchers d WHERE d.owner = t.owner AND d.lease_expires_ms >= $2)
LIMIT $3)
UNION ALL
(SELECT 'start' AS sweep_kind, ${TASK_COLUMNS} FROM tasks t
WHERE t.state = 'PENDING' AND t.start_deadline_ms > 0 AND t.start_deadline_ms <= $2
ORDER BY t.start_deadline_ms
LIMIT $3)`;
