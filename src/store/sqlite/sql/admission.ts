/**
 * What the queue caps read (src/security/queue-depths.ts): the waiting tasks
 * of one queue, and which idempotency keys are still held.
 */

/**
 * PENDING tasks of one queue, delayed ones included (tasks_pending_by_ready_at).
 *
 * Inputs (positional): 1. queue. Output: one row { n }.
 */
export const PENDING_IN_QUEUE = `
SELECT count(*) AS n FROM tasks WHERE state = 'PENDING' AND queue = ?`;

/**
 * Which of these idempotency keys a task still holds (not expired by now).
 *
 * Inputs (positional): 1. keys (a JSON array of strings), 2. now (ms).
 * Output: rows { key }.
 */
export const HELD_KEYS = `
SELECT key FROM idempotency_keys WHERE key IN (SELECT value FROM json_each(?)) AND expires_ms > ?`;
