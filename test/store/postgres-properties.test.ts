/**
 * The TaskStore properties (task-store.properties.ts) against PostgreSQL:
 * a schema per case (dropped after the file). A store restart closes the
 * store (pool and LISTEN connection) and opens a new one on the same schema.
 * Skips, saying so, when ZONAL_PG_URL is unset.
 */
import { afterAll, describe } from 'vitest';
import { PostgresTaskStore } from '../../src/store/postgres/postgres-task-store';
import { pgTestSchemas, PG_URL, skipWithoutPostgres } from '../support/postgres';
import { describeTaskStoreProperties, reopeningStore } from './task-store.properties';

const schemas = pgTestSchemas('props');
afterAll(() => schemas.dropAll());

describe.skipIf(skipWithoutPostgres())('PostgresTaskStore', () => {
  describeTaskStoreProperties('PostgresTaskStore', {
    runs: 60,
    msPerRun: 600,
    make: async () => {
      const schema = schemas.next();
      const open = async (): Promise<PostgresTaskStore> => {
        const store = new PostgresTaskStore({ url: PG_URL!, schema });
        await store.open();
        return store;
      };
      return reopeningStore(open);
    },
  });
});
