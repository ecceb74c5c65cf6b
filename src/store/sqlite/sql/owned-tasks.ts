import { HELD_STATES, TASK_COLUMNS } from './task-columns';

/**
 * Every task one dispatcher holds; the WHERE term repeats the partial index
 * tasks_held_by_owner.
 *
 * Inputs (positional): 1. owner.
 * Output: TaskRows.
 */
export const OWNED_TASKS = `
SELECT ${TASK_COLUMNS}
FROM tasks AS t
WHERE t.state IN ${HELD_STATES} AND t.owner = ?`;
