/**
 * Where the demo's dispatchers keep their tasks. With PostgreSQL reachable
 * they share one fresh schema, `zonal_demo_<pid>`, so each dispatcher's
 * heatmap page shows all three; otherwise each has its own SQLite store
 * (the default) and each page shows its own dispatcher's rows.
 *
 * `pg` is an optional peer dependency: without it the demo runs on SQLite.
 */
import { redactStoreUrl } from '../app/store-url';

export const DEFAULT_DEMO_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const PROBE_TIMEOUT_MS = 1_000;

export type DemoStore =
  | { kind: 'sqlite'; why: string }
  | {
      kind: 'postgres';
      /** The database, without Zonal's parameters. */
      url: string;
      schema: string;
      /** What each dispatcher gets as --store. */
      storeUrl: string;
    };

/** Whether `pg` is installed; it is loaded only by the demo's probe and cleanup. */
function loadPg(): typeof import('pg') | undefined {
  try {
    return require('pg') as typeof import('pg');
  } catch {
    return undefined;
  }
}

/**
 * `choice` is `auto` (PostgreSQL if it answers within 1 s, else SQLite),
 * `sqlite`, `postgres` (must answer), or a postgres:// URL (must answer).
 */
export async function chooseDemoStore(choice: string, env: NodeJS.ProcessEnv, pid: number): Promise<DemoStore> {
  if (choice === 'sqlite') return { kind: 'sqlite', why: 'asked for with --store sqlite' };
  const explicit = choice.startsWith('postgres://') || choice.startsWith('postgresql://');
  if (choice !== 'auto' && choice !== 'postgres' && !explicit) throw new RangeError(`--store must be auto, sqlite, postgres or a postgres:// URL, got "${redactStoreUrl(choice)}"`);
  const url = explicit ? choice : env['ZONAL_PG_URL'] || DEFAULT_DEMO_PG_URL;
  const required = choice !== 'auto';
  const pg = loadPg();
  if (pg === undefined) {
    if (required) throw new Error('--store postgres needs the pg package: npm install pg');
    return { kind: 'sqlite', why: 'the pg package is not installed' };
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    const why = `PostgreSQL at ${redactStoreUrl(url)} did not answer (${err instanceof Error ? err.message : String(err)})`;
    if (required) throw new Error(why);
    return { kind: 'sqlite', why };
  } finally {
    await client.end().catch(() => undefined);
  }
  const schema = `zonal_demo_${pid}`;
  const storeUrl = `${url}${url.includes('?') ? '&' : '?'}schema=${schema}&pool_max=4`;
  return { kind: 'postgres', url, schema, storeUrl };
}

/** Drops the demo's schema (the dispatchers created it at start). */
export async function dropDemoSchema(store: DemoStore): Promise<void> {
  if (store.kind !== 'postgres') return;
  const pg = loadPg();
  if (pg === undefined) return;
  const client = new pg.Client({ connectionString: store.url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${store.schema} CASCADE`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
