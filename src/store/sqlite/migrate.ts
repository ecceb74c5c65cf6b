import type Database from 'better-sqlite3';
import { MIGRATION_001_INIT } from './migrations/001-init';
import { MIGRATION_002_OWNERSHIP } from './migrations/002-ownership';
import { MIGRATION_003_TRACE_CONTEXT } from './migrations/003-trace-context';

export interface Migration {
  /** 1-based; equals the `PRAGMA user_version` the database has once applied. */
  version: number;
  sql: string;
}

/** Every migration, in order. Append only: a shipped migration is never edited. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, sql: MIGRATION_001_INIT },
  { version: 2, sql: MIGRATION_002_OWNERSHIP },
  { version: 3, sql: MIGRATION_003_TRACE_CONTEXT },
];

/**
 * Brings the schema up to the newest migration, tracked with
 * `PRAGMA user_version`. Idempotent. The version is read and every pending
 * migration applied inside one IMMEDIATE transaction, so two processes
 * opening the same file at once cannot both apply a migration, and a failed
 * migration leaves the schema as it was. Returns the resulting version.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  const latest = migrations.length;
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration #${i + 1} has version ${m.version}; versions must be 1, 2, 3…`);
  });
  const apply = db.transaction((): number => {
    const current = db.pragma('user_version', { simple: true });
    if (typeof current !== 'number') throw new Error(`PRAGMA user_version returned ${String(current)}`);
    if (current > latest) {
      throw new Error(`database schema version ${current} is newer than this build supports (${latest}); upgrade Zonal`);
    }
    for (const m of migrations.slice(current)) {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }
    return latest;
  });
  return apply.immediate();
}
