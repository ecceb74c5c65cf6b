import { HELD_STATES, TASK_COLUMNS } from './task-columns';

/**
 * What a sweep decides about (core/sweep-rules.ts).
 *
 * LEASE_EXPIRED: tasks held by a dispatcher whose entry expired or is gone
 * (not by @owner, the caller), whose own claim lease has passed too.
 * Inputs (named): @owner, @now, @limit. Output: TaskRows.
 *
 * START_EXPIRED: PENDING tasks past their schedule-to-start deadline; the
 * WHERE term repeats the partial index tasks_start_deadline.
 * Inputs (named): @now, @limit. Output: TaskRows, earliest deadline first.
 */
export const LEASE_EXPIRED = `
SELECT ${TASK_COLUMNS}
FROM tasks AS t
WHERE t.state IN ${HELD_STATES} AND t.owner <> @owner AND t.lease_expires_ms < @now
  AND NOT EXISTS (SELECT 1 FROM dispatchers AS d WHERE d.owner = t.owner AND d.lease_expires_ms >= @now)
LIMIT @limit`;

export const START_EXPIRED = `
SELECT ${TASK_COLUMNS}
FROM tasks AS t
WHERE t.state = 'PENDING' AND t.start_deadline_ms > 0 AND t.start_deadline_ms <= @now
ORDER BY t.start_deadline_ms
LIMIT @limit`;
