import type { TaskStore } from '../store/task-store';
import type { ServerOptions } from './server-options';
import { parseStoreUrl } from './store-url';

/**
 * The store a dispatcher runs on, from `--store`. Each adapter is loaded only
 * when chosen, so a PostgreSQL dispatcher never loads better-sqlite3 (and
 * the other way round); a missing driver is named with how to install it.
 */
export async function openStore(options: Pick<ServerOptions, 'store' | 'sqliteSynchronous' | 'allowDamagedStore'>): Promise<TaskStore> {
  const spec = parseStoreUrl(options.store);
  if (spec.kind === 'sqlite') {
    const { SqliteTaskStore } = await loadAdapter('better-sqlite3', () => import('../store/sqlite/sqlite-task-store'));
    return new SqliteTaskStore({ path: spec.path, synchronous: options.sqliteSynchronous, allowDamaged: options.allowDamagedStore });
  }
  const { PostgresTaskStore } = await loadAdapter('pg', () => import('../store/postgres/postgres-task-store'));
  return new PostgresTaskStore({ url: spec.url, schema: spec.schema, poolMax: spec.poolMax });
}

async function loadAdapter<T>(driver: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if ((err as { code?: string }).code === 'MODULE_NOT_FOUND' && String((err as Error).message).includes(`'${driver}'`)) {
      throw new Error(`this store needs the ${driver} package: npm install ${driver}`, { cause: err });
    }
    throw err;
  }
}
