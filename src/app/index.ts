/**
 * `zonal/server`: the dispatcher, its options and its stores.
 *
 * ```ts
 * import { startServer } from 'zonal/server';
 *
 * // SQLite in ./data (needs `npm install better-sqlite3`), or PostgreSQL shared by several dispatchers (needs `pg`):
 * const server = await startServer({ grpcAddress: '127.0.0.1:0', adminAddress: '', dataDir: './data' });
 * // const server = await startServer({ store: 'postgres://zonal@db:5432/zonal', zone: 'eu-west-1a', dataDir: './data-a' });
 * console.log('serving on', server.grpcAddress);
 * await server.stop();
 * ```
 *
 * The store's driver is loaded only when that store is opened; each is an
 * optional peer dependency of the package.
 */
export { startServer, type RunningServer } from './start-server';
export { compileServerOptions, type ServerOptions, type ServerOptionsInput } from './server-options';
export { parseStoreUrl, type StoreSpec } from './store-url';
export { openStore } from './open-store';
export { compileCoreOptions, CORE_DEFAULTS, type CoreOptions } from '../core/options';
export type { TaskStore, StoreEvent, StoreHealth, DispatcherEntry } from '../store/task-store';
export type { TaskRecord, TaskSpec } from '../core/task-fields';
export type { DispatcherStats, Readiness } from '../server/dispatcher';
