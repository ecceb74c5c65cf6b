import { STATE_ASSIGNMENTS } from './task-columns';

/**
 * A write: sets every state column, only while the row holds the version
 * the engine read. The definition columns are not in it.
 *
 * Inputs (named): every state column as @column, @id, @expect_version, and
 * @seq: the task's new FIFO place, or NULL to keep it.
 * Output: none; changes = 1 when written, 0 when the version differs (or the task is gone).
 */
export const WRITE_STATE = `
UPDATE tasks SET ${STATE_ASSIGNMENTS}, seq = coalesce(@seq, seq)
WHERE id = @id AND version = @expect_version`;
