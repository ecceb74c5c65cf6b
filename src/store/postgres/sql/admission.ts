/**
 * What the queue caps read (src/security/queue-depths.ts): the waiting tasks
 * of one queue, and which idempotency keys are still held.
 */

/**
 * PENDING tasks of one queue, delayed ones included (tasks_pending_by_ready_at).
 *
 * Inputs: 1. queue. Output: one row { n }.
 */
export const PENDING_IN_QUEUE = `
SELECT count(*) AS n FROM tasks WHERE state = 'PENDING' AND queue = $1`;

/**
 * Which of these idempotency keys a task still holds (not expired by now).
 *
 * Inputs: 1. keys (text[]), 2. now (ms). Output: rows { key }.
 */
export const HELD_KEYS = `
SELECT key FROM idempotency_keys WHERE key = ANY($1::text[]) AND expires_ms > $2`;
