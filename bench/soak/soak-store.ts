/**
 * Where the soak's dispatchers keep their tasks.
 *
 * - PostgreSQL when ZONAL_PG_URL answers (--store auto) or is required
 *   (--store postgres): three dispatchers, one per zone, share a fresh schema
 *   `zonal_soak_<ms>_<pid>`. When the PostgreSQL binaries are installed
 *   (initdb, pg_ctl), the soak runs a private cluster for everything
 *   (test/support/private-postgres.ts), so it may stop and start the database
 *   without touching the machine's shared server; the cluster and its files
 *   are deleted at the end. Without them the schema lives on ZONAL_PG_URL's
 *   server, is dropped at the end, and the PostgreSQL restart is skipped
 *   (and the report says so).
 * - SQLite otherwise: one dispatcher (one SQLite file cannot serve several).
 */
import { Client } from 'pg';
import { pgReachable } from '../deployed/pipeline';
import { privatePostgresUnavailable, startPrivatePostgres, type PrivatePostgres } from '../../test/support/private-postgres';
import type { OrphanGuard } from './guard';
import type { SoakOptions } from './options';

export type SoakStore =
  | { kind: 'sqlite'; why: string }
  | {
      kind: 'postgres';
      /** private: this run's own cluster (restartable); shared: a schema on ZONAL_PG_URL's server. */
      cluster: 'private' | 'shared';
      why: string;
      /** The database, without Zonal's parameters. */
      url: string;
      schema: string;
      /** Each dispatcher's --store. */
      storeUrl: string;
      /** The private cluster, for the PostgreSQL-restart fault. */
      server: PrivatePostgres | undefined;
      /** Deletes the cluster, or drops the schema on the shared server. */
      dispose(): Promise<void>;
    };

export type PostgresStore = Extract<SoakStore, { kind: 'postgres' }>;

/** Each dispatcher's pool (docs/operations.md: pool_max + 1 connections each). */
const POOL_MAX = 6;

export async function openSoakStore(options: SoakOptions, guard: OrphanGuard): Promise<SoakStore> {
  if (options.store === 'sqlite') return { kind: 'sqlite', why: 'asked for with --store sqlite' };
  if (options.pgUrl === '') {
    if (options.store === 'postgres') throw new Error('--store postgres needs ZONAL_PG_URL');
    return { kind: 'sqlite', why: 'ZONAL_PG_URL is unset' };
  }
  if (!(await pgReachable(options.pgUrl))) {
    if (options.store === 'postgres') throw new Error(`PostgreSQL at ZONAL_PG_URL does not answer`);
    return { kind: 'sqlite', why: 'PostgreSQL at ZONAL_PG_URL does not answer' };
  }
  const schema = `zonal_soak_${Date.now()}_${process.pid}`;
  const withSchema = (url: string): string => `${url}${url.includes('?') ? '&' : '?'}schema=${schema}&pool_max=${POOL_MAX}`;
  const unavailable = privatePostgresUnavailable();
  if (unavailable !== undefined) {
    guard.schema(options.pgUrl, schema);
    return {
      kind: 'postgres',
      cluster: 'shared',
      why: `ZONAL_PG_URL answers; no private cluster (${unavailable}), so the schema is on that server and PostgreSQL is not restarted`,
      url: options.pgUrl,
      schema,
      storeUrl: withSchema(options.pgUrl),
      server: undefined,
      dispose: () => dropSchema(options.pgUrl, schema),
    };
  }
  const server = await startPrivatePostgres();
  try {
    guard.pgDataDir(await dataDirectory(server.url));
  } catch (err) {
    await server.dispose();
    throw err;
  }
  return {
    kind: 'postgres',
    cluster: 'private',
    why: `ZONAL_PG_URL answers; the PostgreSQL binaries are installed, so the soak runs on a private cluster (port ${server.port}) it can restart`,
    url: server.url,
    schema,
    storeUrl: withSchema(server.url),
    server,
    dispose: () => server.dispose(),
  };
}

async function dataDirectory(url: string): Promise<string> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ data_directory: string }>('SHOW data_directory');
    return rows[0]!.data_directory;
  } finally {
    await client.end();
  }
}

async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}
