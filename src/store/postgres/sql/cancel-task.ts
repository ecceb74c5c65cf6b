import { TASK_COLUMNS, TERMINAL_STATES } from './task-columns';

/**
 * Cancels a task whoever holds it (core/store-cancel.ts), in one statement: locks the row, and
 * unless it is terminal sets it CANCELLED with the next version. Says who
 * held the attempt, and notifies that dispatcher (channel $4) when there was
 * one, so it tells its worker.
 *
 * Inputs (positional): 1. id, 2. error (jsonb), 3. now, 4. the cancel channel.
 * Output: zero rows when the task is unknown or terminal, else one PgTaskRow
 * as written with previous_owner and previous_attempt.
 */
export const CANCEL_TASK = `
WITH old AS (
  SELECT id, owner, attempt FROM tasks WHERE id = $1 FOR UPDATE
), cancelled AS (
  UPDATE tasks t SET
    state = 'CANCELLED',
    owner = '',
    lease_expires_ms = 0,
    session_id = '',
    attempt_deadline_ms = 0,
    result = NULL,
    error = $2::jsonb,
    version = t.version + 1,
    updated_ms = $3
  FROM old
  WHERE t.id = old.id AND t.state NOT IN ${TERMINAL_STATES}
  RETURNING ${TASK_COLUMNS}, old.owner AS previous_owner, old.attempt AS previous_attempt
)
SELECT c.*, CASE WHEN c.previous_owner <> '' THEN pg_notify($4, json_build_object('owner', c.previous_owner, 'taskId', c.id, 'attempt', c.previous_attempt)::text) END AS notified
FROM cancelled c`;
