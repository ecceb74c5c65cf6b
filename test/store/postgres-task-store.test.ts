import { afterAll, describe } from 'vitest';
import { PostgresTaskStore } from '../../src/store/postgres/postgres-task-store';
import { describeTaskStoreContract } from './task-store.contract';
import { pgTestSchemas, PG_URL, skipWithoutPostgres } from '../support/postgres';

const schemas = pgTestSchemas('contract');
afterAll(() => schemas.dropAll());

describe.skipIf(skipWithoutPostgres())('PostgresTaskStore', () => {
  describeTaskStoreContract('PostgresTaskStore', async () => new PostgresTaskStore({ url: PG_URL!, schema: schemas.next() }));
});
