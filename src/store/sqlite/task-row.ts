import { FIELD_LIST, type FieldDef, type TaskRecord } from '../../core/task-fields';
import type { ErrorInfo } from '../../errors';

/**
 * A `tasks` row as better-sqlite3 binds and returns it: one property per
 * column of the field table (core/task-fields.ts), named after the column.
 * labels and error are JSON text; payload and result are BLOBs; state is
 * TEXT kept to a TaskState by the schema's CHECK.
 */
export type TaskRow = Record<string, string | number | Uint8Array | null>;

const STATE_LIST = FIELD_LIST.filter((f) => f.group === 'state');

type Bound = string | number | Uint8Array | null;

function bind(fields: readonly (FieldDef & { name: keyof TaskRecord })[], record: TaskRecord): Bound[] {
  const values: Bound[] = new Array(fields.length);
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    const value = record[field.name];
    switch (field.kind) {
      case 'labels':
        values[i] = JSON.stringify(value);
        break;
      case 'error?':
        values[i] = value === null ? null : JSON.stringify(value);
        break;
      default:
        values[i] = value as Bound;
    }
  }
  return values;
}

/** Every column of a record, in field-table order (INSERT_TASK's parameters). */
export function insertValues(record: TaskRecord): Bound[] {
  return bind(FIELD_LIST, record);
}

/** The state columns only, in field-table order (WRITE_STATE's parameters): the definition is never written again. */
export function stateValues(record: TaskRecord): Bound[] {
  return bind(STATE_LIST, record);
}

/** Trusts the row: the schema's CHECK keeps `state` a TaskState, and only insertValues and stateValues write the JSON. */
export function fromRow(row: TaskRow): TaskRecord {
  const record: Record<string, unknown> = {};
  for (const field of FIELD_LIST) {
    const value = row[field.column];
    switch (field.kind) {
      case 'labels':
        record[field.name] = JSON.parse(value as string) as Record<string, string>;
        break;
      case 'error?':
        record[field.name] = value === null ? null : (JSON.parse(value as string) as ErrorInfo);
        break;
      default:
        record[field.name] = value;
    }
  }
  return record as TaskRecord;
}
