import type { PoolClient } from 'pg';
import { PG_MIGRATION_001_INIT } from './migrations/001-init';
import { PG_MIGRATION_002_TRACE_CONTEXT } from './migrations/002-trace-context';

export interface PgMigration {
  /** 1-based; recorded in zonal_migrations once applied. */
  version: number;
  sql: string;
}

/** Every migration, in order. Append only: a shipped migration is never edited. */
export const PG_MIGRATIONS: readonly PgMigration[] = [
  { version: 1, sql: PG_MIGRATION_001_INIT },
  { version: 2, sql: PG_MIGRATION_002_TRACE_CONTEXT },
];

/**
 * Brings `schema` up to the newest migration. Idempotent. Everything runs in
 * one transaction under a transaction-scoped advisory lock keyed by the
 * schema, so dispatchers starting together take turns: the first applies,
 * the others find it done. A failed migration leaves the schema as it was.
 * Returns the resulting version.
 */
export async function migratePostgres(client: PoolClient, schema: string, migrations: readonly PgMigration[] = PG_MIGRATIONS): Promise<number> {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration #${i + 1} has version ${m.version}; versions must be 1, 2, 3…`);
  });
  const latest = migrations.length;
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`zonal.migrate.${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await client.query(`SET LOCAL search_path TO ${schema}`);
    await client.query('CREATE TABLE IF NOT EXISTS zonal_migrations (version bigint PRIMARY KEY, applied_ms bigint NOT NULL)');
    const { rows } = await client.query<{ version: number | null }>('SELECT max(version) AS version FROM zonal_migrations');
    const current = Number(rows[0]?.version ?? 0);
    if (current > latest) {
      throw new Error(`schema ${schema} is at migration ${current}, newer than this build supports (${latest}); upgrade Zonal`);
    }
    for (const m of migrations.slice(current)) {
      await client.query(m.sql);
      await client.query('INSERT INTO zonal_migrations (version, applied_ms) VALUES ($1, $2)', [m.version, Date.now()]);
    }
    await client.query('COMMIT');
    return latest;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
