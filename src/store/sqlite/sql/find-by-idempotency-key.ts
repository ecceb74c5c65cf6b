import { TASK_COLUMNS } from './task-columns';

/**
 * The task a still-retained idempotency key points to. A key at or past its
 * expiry, or whose task was purged, yields nothing.
 *
 * Inputs (positional): 1. key, 2. now (ms).
 * Output: zero or one TaskRow.
 */
export const FIND_BY_IDEMPOTENCY_KEY = `
SELECT ${TASK_COLUMNS}
FROM idempotency_keys AS k
JOIN tasks AS t ON t.id = k.task_id
WHERE k.key = ? AND k.expires_ms > ?`;
