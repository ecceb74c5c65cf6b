import { HELD_STATES, TASK_COLUMNS } from './task-columns';

/**
 * LEASE_EXPIRED: tasks held by a dispatcher whose entry expired or is gone
 * (never by $1, the caller), whose own claim lease has passed too.
 * Inputs: 1. owner, 2. now, 3. limit. Output: PgTaskRows.
 *
 * START_EXPIRED: PENDING tasks past their schedule-to-start deadline; the
 * WHERE term repeats the partial index tasks_start_deadline.
 * Inputs: 1. now, 2. limit. Output: PgTaskRows, earliest deadline first.
 */
export const LEASE_EXPIRED = `
SELECT ${TASK_COLUMNS} FROM tasks t
WHERE t.state IN ${HELD_STATES} AND t.owner <> $1 AND t.lease_expires_ms < $2
  AND NOT EXISTS (SELECT 1 FROM dispatchers d WHERE d.owner = t.owner AND d.lease_expires_ms >= $2)
LIMIT $3`;

export const START_EXPIRED = `
SELECT ${TASK_COLUMNS} FROM tasks t
WHERE t.state = 'PENDING' AND t.start_deadline_ms > 0 AND t.start_deadline_ms <= $1
ORDER BY t.start_deadline_ms
LIMIT $2`;
