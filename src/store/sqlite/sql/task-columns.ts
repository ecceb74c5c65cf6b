import { FIELD_LIST, STATE_FIELDS, TASK_FIELDS } from '../../../core/task-fields';

/**
 * The `tasks` columns, derived from the field table (core/task-fields.ts).
 * Fragments, not statements. `t` is the alias the statements give `tasks`;
 * every task-returning statement selects TASK_COLUMNS and yields a TaskRow
 * (../task-row.ts).
 */
export const TASK_COLUMNS = FIELD_LIST.map((f) => `t.${f.column}`).join(', ');

/**
 * The insert's column list and its positional parameters, in field-table
 * order (../task-row.ts `insertValues` binds them). The two statements a
 * commit runs for every task bind by position: better-sqlite3 binds an array
 * faster than an object of named parameters (measured: store-cycle).
 */
export const INSERT_COLUMNS = FIELD_LIST.map((f) => f.column).join(', ');
export const INSERT_VALUES = FIELD_LIST.map(() => '?').join(', ');

/** `column = ?` for every state column, in field-table order: what a write changes. The definition columns are never in it. */
export const STATE_ASSIGNMENTS = STATE_FIELDS.map((name) => `${TASK_FIELDS[name].column} = ?`).join(', ');

/** The states in which a dispatcher holds a task. */
export const HELD_STATES = `('ASSIGNED', 'RUNNING')`;
/** The terminal states. */
export const TERMINAL_STATES = `('COMPLETED', 'FAILED', 'CANCELLED')`;

/**
 * Whether sessions of zone @zone on a dispatcher of zone @dispatcher_zone may
 * take the task at once (core/claim-rules.ts, takesAtOnce).
 */
export const TAKES_AT_ONCE = `(CASE WHEN t.preferred_zone <> '' THEN t.preferred_zone = @zone ELSE t.accepted_zone IN ('', @dispatcher_zone, @zone) END)`;
