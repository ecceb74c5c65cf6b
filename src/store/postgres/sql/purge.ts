import { TERMINAL_STATES } from './task-columns';

/**
 * Deletes, in one statement, up to $3 idempotency keys no longer held
 * (expires_ms <= $1), and up to $3 terminal tasks last updated before $2
 * (oldest first, through tasks_finished_by_updated_ms) with their keys, so a
 * key always names a task that exists.
 *
 * Inputs: 1. now, 2. finished before (ms, exclusive), 3. limit.
 * Output: one row { keys, tasks }: how many of each went.
 */
export const PURGE = `
WITH expired AS (
  DELETE FROM idempotency_keys WHERE key IN (
    SELECT key FROM idempotency_keys WHERE expires_ms <= $1 ORDER BY expires_ms LIMIT $3
  ) RETURNING key
), finished AS (
  DELETE FROM tasks WHERE id IN (
    SELECT id FROM tasks WHERE state IN ${TERMINAL_STATES} AND updated_ms < $2 ORDER BY updated_ms LIMIT $3
  ) RETURNING id, idempotency_key
), their_keys AS (
  DELETE FROM idempotency_keys k USING finished f WHERE k.key = f.idempotency_key AND k.task_id = f.id AND f.idempotency_key <> ''
  AND k.key NOT IN (SELECT key FROM expired)
)
SELECT (SELECT count(*) FROM expired) AS keys, (SELECT count(*) FROM finished) AS tasks`;
