import * as path from 'node:path';

/**
 * Which store a dispatcher runs on, from `--store`:
 * - `sqlite:<dir>`: the embedded store, `<dir>/zonal.db` (the default is `sqlite:<data dir>`);
 * - `postgres://user@host:5432/db?schema=zonal&pool_max=8` (or `postgresql://`):
 *   several dispatchers share it. `schema` (default `zonal`) and `pool_max`
 *   (default 8 connections) are Zonal's; every other parameter goes to `pg`
 *   (`sslmode`, `application_name`, ...). The password can come from
 *   PGPASSWORD instead of the URL.
 */
export type StoreSpec =
  | { kind: 'sqlite'; dir: string; path: string }
  | { kind: 'postgres'; url: string; schema: string; poolMax: number };

export const DEFAULT_PG_SCHEMA = 'zonal';
export const DEFAULT_PG_POOL_MAX = 8;
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

export function parseStoreUrl(url: string): StoreSpec {
  if (url.startsWith('sqlite:')) {
    const dir = url.slice('sqlite:'.length);
    if (dir === '') throw new RangeError('--store sqlite:<dir> needs a directory, for example sqlite:./data');
    return { kind: 'sqlite', dir, path: path.join(dir, 'zonal.db') };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new RangeError(`--store ${redactStoreUrl(url)} is not a valid URL; expected postgres://user@host:5432/database`);
    }
    const schema = parsed.searchParams.get('schema') ?? DEFAULT_PG_SCHEMA;
    if (!SCHEMA_PATTERN.test(schema)) throw new RangeError(`--store: schema "${schema}" must be a lower-case SQL identifier (letters, digits, _)`);
    const poolText = parsed.searchParams.get('pool_max');
    const poolMax = poolText === null ? DEFAULT_PG_POOL_MAX : Number(poolText);
    if (!Number.isInteger(poolMax) || poolMax < 2 || poolMax > 100) throw new RangeError(`--store: pool_max must be a whole number 2..100, got ${poolText}`);
    parsed.searchParams.delete('schema');
    parsed.searchParams.delete('pool_max');
    return { kind: 'postgres', url: parsed.toString(), schema, poolMax };
  }
  throw new RangeError(`--store must be sqlite:<dir> or postgres://…, got "${redactStoreUrl(url)}"`);
}

/** The URL with any password replaced, for logs and errors. */
export function redactStoreUrl(url: string): string {
  return url.replace(/^(\w+:\/\/[^:/@]*):[^@]*@/, '$1:***@');
}
