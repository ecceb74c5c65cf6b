import { TASK_COLUMNS } from './task-columns';

/**
 * One task by id.
 *
 * Inputs (positional): 1. task id.
 * Output: zero or one TaskRow.
 */
export const GET_TASK = `
SELECT ${TASK_COLUMNS}
FROM tasks AS t
WHERE t.id = ?`;
