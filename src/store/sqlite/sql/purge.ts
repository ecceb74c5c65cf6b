import { TERMINAL_STATES } from './task-columns';

/**
 * PURGE_KEYS: deletes up to a limit of idempotency keys no longer held
 * (expires_ms <= now). Inputs (positional): 1. now, 2. limit. Output: none; changes = keys deleted.
 *
 * FINISHED_TO_PURGE: up to a limit of terminal tasks last updated before a
 * cutoff, oldest first. The state term repeats the partial index
 * tasks_finished_by_updated_ms (migrations/001-init.ts) word for word.
 * Inputs (positional): 1. finishedBefore (ms, exclusive), 2. limit. Output: rows { id, idempotency_key }.
 *
 * DELETE_TASK: Inputs (positional): 1. id. Output: none.
 *
 * DELETE_TASK_KEY: a purged task's key goes with it, so a key always names a
 * task that exists. Inputs (positional): 1. key, 2. task id. Output: none.
 */
export const PURGE_KEYS = `
DELETE FROM idempotency_keys
WHERE key IN (
  SELECT key FROM idempotency_keys
  WHERE expires_ms <= ?
  ORDER BY expires_ms
  LIMIT ?
)`;

export const FINISHED_TO_PURGE = `
SELECT id, idempotency_key FROM tasks
WHERE state IN ${TERMINAL_STATES} AND updated_ms < ?
ORDER BY updated_ms
LIMIT ?`;

export const DELETE_TASK = `
DELETE FROM tasks WHERE id = ?`;

export const DELETE_TASK_KEY = `
DELETE FROM idempotency_keys WHERE key = ? AND task_id = ?`;
