import { STATE_ASSIGNMENTS } from './task-columns';

/**
 * A write: sets every state column, only while the row holds the version
 * the engine read. The definition columns are not in it.
 *
 * Inputs (positional): every state column in field-table order (task-row.ts
 * stateValues), then seq (the task's new FIFO place, or NULL to keep it), id,
 * and the expected version.
 * Output: none; changes = 1 when written, 0 when the version differs (or the task is gone).
 */
export const WRITE_STATE = `
UPDATE tasks SET ${STATE_ASSIGNMENTS}, seq = coalesce(?, seq)
WHERE id = ? AND version = ?`;
