/**
 * The task that holds an idempotency key.
 *
 * Inputs (positional): 1. key.
 * Output: zero or one row { task_id }.
 */
export const IDEMPOTENCY_KEY_HOLDER = `
SELECT task_id FROM idempotency_keys WHERE key = ?`;
