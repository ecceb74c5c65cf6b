import { HELD_STATES, TASK_COLUMNS } from './task-columns';

/** GET_TASK: one task. Inputs: 1. id. Output: zero or one PgTaskRow. */
export const GET_TASK = `SELECT ${TASK_COLUMNS} FROM tasks t WHERE t.id = $1`;

/** GET_TASKS: the tasks among a list of ids. Inputs: 1. ids (text[]). Output: PgTaskRows, any order. */
export const GET_TASKS = `SELECT ${TASK_COLUMNS} FROM tasks t WHERE t.id = ANY($1::text[])`;

/**
 * OWNED_TASKS: every task one dispatcher holds; the WHERE term repeats the
 * partial index tasks_held_by_owner. Inputs: 1. owner. Output: PgTaskRows.
 */
export const OWNED_TASKS = `SELECT ${TASK_COLUMNS} FROM tasks t WHERE t.state IN ${HELD_STATES} AND t.owner = $1`;
