import { TASK_COLUMNS } from './task-columns';

/**
 * Every task not in a terminal state, in seq order, for recovery after a
 * restart. The WHERE term repeats the one of the partial index
 * tasks_unfinished_by_seq (migrations/001-init.ts) word for word, so the scan
 * reads only unfinished tasks and needs no sort (a test checks the plan).
 *
 * Inputs: none.
 * Output: TaskRows ordered by seq.
 */
export const LOAD_UNFINISHED = `
SELECT ${TASK_COLUMNS}
FROM tasks AS t
WHERE t.state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')
ORDER BY t.seq`;
