import { TASK_COLUMNS } from './task-columns';

/**
 * The tasks among a list of ids (those that exist).
 *
 * Inputs (positional): 1. the ids as a JSON array of strings.
 * Output: TaskRows, in any order.
 */
export const GET_TASKS = `
SELECT ${TASK_COLUMNS}
FROM tasks AS t
WHERE t.id IN (SELECT value FROM json_each(?))`;
