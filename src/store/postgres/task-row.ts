import { FIELD_LIST, type TaskRecord } from '../../core/task-fields';

/**
 * A `tasks` row as pg returns it with the store's type parsers (int8 as a
 * number, jsonb parsed, bytea as Buffer): one property per column of the
 * field table (core/task-fields.ts), named after the column.
 */
export type PgTaskRow = Record<string, unknown>;

const STATE_LIST = FIELD_LIST.filter((f) => f.group === 'state');

/** A value as an element of the column's array parameter (task-columns.ts PG_TYPE). */
function toParam(kind: (typeof FIELD_LIST)[number]['kind'], value: unknown): unknown {
  switch (kind) {
    case 'labels':
      return JSON.stringify(value);
    case 'error?':
      return value === null ? null : JSON.stringify(value);
    case 'bytes':
    case 'bytes?': {
      if (value === null) return null;
      const bytes = value as Uint8Array;
      return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    default:
      return value;
  }
}

/** One array per column (every column: an insert), in field-table order. */
export function insertColumns(records: readonly TaskRecord[]): unknown[][] {
  return FIELD_LIST.map((field) => records.map((r) => toParam(field.kind, r[field.name])));
}

/** One array per state column (a write), in field-table order. */
export function stateColumns(records: readonly TaskRecord[]): unknown[][] {
  return STATE_LIST.map((field) => records.map((r) => toParam(field.kind, r[field.name])));
}

/** Trusts the row: the schema's CHECK keeps `state` a TaskState, and only this module writes the JSON. */
export function fromPgRow(row: PgTaskRow): TaskRecord {
  const record: Record<string, unknown> = {};
  for (const field of FIELD_LIST) {
    const value = row[field.column];
    record[field.name] = field.kind === 'error?' || field.kind === 'bytes?' ? (value ?? null) : value;
  }
  return record as TaskRecord;
}
