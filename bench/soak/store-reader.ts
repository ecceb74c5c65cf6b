/**
 * Reads the soak's tasks straight from the store the dispatchers wrote, for
 * the verdict: the PostgreSQL schema, or the SQLite file (opened read-only;
 * WAL lets it be read while the dispatcher writes). Only the columns the
 * verdict needs, never the payload.
 */
import * as path from 'node:path';
import { Client } from 'pg';
import type { SoakStore } from './soak-store';

export interface StoredTask {
  id: string;
  state: string;
  attempt: number;
  maxAttempts: number;
  idempotencyKey: string;
  /** The result as text (COMPLETED), else null. */
  result: string | null;
  errorReason: string | null;
  /** For the evidence of a broken invariant: who wrote the row last, and when. */
  version: number;
  owner: string;
  workerId: string;
  createdMs: number;
  updatedMs: number;
}

export interface StoreReader {
  /** Ids of the tasks that are not terminal (yet). */
  unfinished(): Promise<Set<string>>;
  /** Every task, by id. */
  readAll(): Promise<Map<string, StoredTask>>;
  /** Idempotency keys that more than one task carries (must be none). */
  duplicateKeys(): Promise<string[]>;
}

const TERMINAL = "('COMPLETED', 'FAILED', 'CANCELLED')";
const COLUMNS = 'id, state, attempt, max_attempts, idempotency_key, result, error, version, owner, worker_id, created_ms, updated_ms';

interface Row {
  id: string;
  state: string;
  attempt: number | string;
  max_attempts: number | string;
  idempotency_key: string;
  result: Uint8Array | null;
  error: string | { reason?: string } | null;
  version: number | string;
  owner: string;
  worker_id: string;
  created_ms: number | string;
  updated_ms: number | string;
}

function toTask(row: Row): StoredTask {
  const error = typeof row.error === 'string' ? (JSON.parse(row.error) as { reason?: string }) : row.error;
  return {
    id: row.id,
    state: row.state,
    attempt: Number(row.attempt),
    maxAttempts: Number(row.max_attempts),
    idempotencyKey: row.idempotency_key,
    result: row.result === null ? null : Buffer.from(row.result).toString('utf8'),
    errorReason: error?.reason ?? null,
    version: Number(row.version),
    owner: row.owner,
    workerId: row.worker_id,
    createdMs: Number(row.created_ms),
    updatedMs: Number(row.updated_ms),
  };
}

/** `sqliteDataDir`: the data dir of the one SQLite dispatcher. */
export function storeReader(store: SoakStore, sqliteDataDir: string): StoreReader {
  if (store.kind === 'postgres') {
    const table = `${store.schema}.tasks`;
    const query = async <T extends object>(sql: string): Promise<T[]> => {
      const client = new Client({ connectionString: store.url, connectionTimeoutMillis: 5_000, statement_timeout: 60_000 });
      await client.connect();
      try {
        return (await client.query<T>(sql)).rows;
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    return {
      unfinished: async () => new Set((await query<{ id: string }>(`SELECT id FROM ${table} WHERE state NOT IN ${TERMINAL}`)).map((r) => r.id)),
      readAll: async () => new Map((await query<Row>(`SELECT ${COLUMNS} FROM ${table}`)).map((r) => [r.id, toTask(r)])),
      duplicateKeys: async () => (await query<{ k: string }>(`SELECT idempotency_key AS k FROM ${table} GROUP BY idempotency_key HAVING count(*) > 1`)).map((r) => r.k),
    };
  }
  const file = path.join(sqliteDataDir, 'zonal.db');
  const query = <T>(sql: string): T[] => {
    const Database = require('better-sqlite3') as typeof import('better-sqlite3');
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      return db.prepare(sql).all() as T[];
    } finally {
      db.close();
    }
  };
  return {
    unfinished: async () => new Set(query<{ id: string }>(`SELECT id FROM tasks WHERE state NOT IN ${TERMINAL}`).map((r) => r.id)),
    readAll: async () => new Map(query<Row>(`SELECT ${COLUMNS} FROM tasks`).map((r) => [r.id, toTask(r)])),
    duplicateKeys: async () => query<{ k: string }>(`SELECT idempotency_key AS k FROM tasks GROUP BY idempotency_key HAVING count(*) > 1`).map((r) => r.k),
  };
}
