import { FIELD_LIST, type FieldKind } from '../../../core/task-fields';

/**
 * The `tasks` columns and their PostgreSQL types, derived from the field
 * table (core/task-fields.ts). Fragments, not statements; `t` is the alias
 * the statements give `tasks`. Every task-returning statement selects
 * TASK_COLUMNS and yields a PgTaskRow (../task-row.ts).
 */
export const PG_TYPE: Record<FieldKind, string> = {
  text: 'text',
  int: 'int8',
  bytes: 'bytea',
  'bytes?': 'bytea',
  labels: 'jsonb',
  'error?': 'jsonb',
  state: 'text',
};

const STATE_LIST = FIELD_LIST.filter((f) => f.group === 'state');

export const TASK_COLUMNS = FIELD_LIST.map((f) => `t.${f.column}`).join(', ');

/** Every column, and an unnest of one array parameter per column from $first (an insert of many rows). */
export const INSERT_COLUMNS = FIELD_LIST.map((f) => f.column).join(', ');
export function insertUnnest(first: number): string {
  return FIELD_LIST.map((f, i) => `$${first + i}::${PG_TYPE[f.kind]}[]`).join(', ');
}
export const INSERT_ALIASES = FIELD_LIST.map((f) => f.column).join(', ');
export const FIELD_COUNT = FIELD_LIST.length;

/** The state columns and their unnest from $first (a write of many rows). The definition columns are never in a write. */
export const STATE_COLUMNS = STATE_LIST.map((f) => f.column);
export function stateUnnest(first: number): string {
  return STATE_LIST.map((f, i) => `$${first + i}::${PG_TYPE[f.kind]}[]`).join(', ');
}
export const STATE_COUNT = STATE_LIST.length;

export const HELD_STATES = `('ASSIGNED', 'RUNNING')`;
export const TERMINAL_STATES = `('COMPLETED', 'FAILED', 'CANCELLED')`;

/** Whether sessions of zone $zone on a dispatcher of zone $dispatcherZone take the task at once (core/claim-rules.ts, takesAtOnce). */
export function takesAtOnce(zone: string, dispatcherZone: string): string {
  return `(CASE WHEN t.preferred_zone <> '' THEN t.preferred_zone = ${zone} ELSE t.accepted_zone IN ('', ${dispatcherZone}, ${zone}) END)`;
}
