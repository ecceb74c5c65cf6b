import { TASK_COLUMNS } from './task-columns';

/**
 * Every unfinished task: read once at open of a store that failed its
 * integrity check, to tell a store that still reads (served in place with
 * --allow-damaged-store) from one that does not (moved aside).
 *
 * Inputs: none. Output: TaskRows.
 */
export const READ_UNFINISHED = `
SELECT ${TASK_COLUMNS}
FROM tasks AS t
WHERE t.state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')`;

/** The largest FIFO place in use (the store numbers new places after it). Output: one row { seq }. */
export const MAX_SEQ = `
SELECT coalesce(max(seq), 0) AS seq FROM tasks`;
