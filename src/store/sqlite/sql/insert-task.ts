import { INSERT_COLUMNS, INSERT_VALUES } from './task-columns';

/**
 * Inserts a new task: the only statement that writes its definition. An id
 * that exists is skipped (a retried commit whose first try had landed).
 *
 * Inputs (positional): every column in field-table order (task-row.ts insertValues), then seq (its FIFO place).
 * Output: none; changes = 1 when inserted, 0 when the id existed.
 */
export const INSERT_TASK = `
INSERT INTO tasks (${INSERT_COLUMNS}, seq)
VALUES (${INSERT_VALUES}, ?)
ON CONFLICT (id) DO NOTHING`;
