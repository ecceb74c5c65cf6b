import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/**
 * PostgreSQL for tests: ZONAL_PG_URL (`.ci/run` sets it). When it is unset,
 * the PostgreSQL tests skip and say so once. Every test run uses schemas of
 * its own and drops them afterwards.
 */
export const PG_URL = process.env['ZONAL_PG_URL'];

let warned = false;

export function skipWithoutPostgres(): boolean {
  if (PG_URL !== undefined && PG_URL !== '') return false;
  if (!warned) {
    warned = true;
    console.warn('ZONAL_PG_URL is unset: skipping the PostgreSQL tests (set it to e.g. postgres://postgres@127.0.0.1:5432/test)');
  }
  return true;
}

/** Fresh schema names for one test file, and a way to drop them all. */
export function pgTestSchemas(tag: string): { next(): string; dropAll(): Promise<void> } {
  const run = `zt_${tag}_${process.pid}_${randomBytes(3).toString('hex')}`;
  const made: string[] = [];
  return {
    next() {
      const name = `${run}_${made.length + 1}`;
      made.push(name);
      return name;
    },
    async dropAll() {
      if (PG_URL === undefined || PG_URL === '' || made.length === 0) return;
      const client = new Client({ connectionString: PG_URL });
      await client.connect();
      try {
        for (const schema of made.splice(0)) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A store URL for `schema` with Zonal's own parameters. */
export function pgStoreUrl(schema: string, extra = ''): string {
  const base = PG_URL ?? '';
  return `${base}${base.includes('?') ? '&' : '?'}schema=${schema}${extra}`;
}
