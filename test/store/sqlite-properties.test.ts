/**
 * The TaskStore properties (task-store.properties.ts) against SQLite: a file
 * per case, in WAL mode with synchronous=FULL as `zonal serve` runs it. A
 * store restart closes the file and opens it again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { SqliteTaskStore } from '../../src/store/sqlite/sqlite-task-store';
import { describeTaskStoreProperties, type StoreUnderTest } from './task-store.properties';

const dir = mkdtempSync(join(tmpdir(), 'zonal-sqlite-properties-'));
let cases = 0;

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describeTaskStoreProperties('SqliteTaskStore (file)', {
  runs: 80,
  msPerRun: 150,
  make: async () => {
    const caseDir = join(dir, `case-${++cases}`);
    const path = join(caseDir, 'tasks.db');
    const open = async (): Promise<SqliteTaskStore> => {
      const store = new SqliteTaskStore({ path });
      await store.open();
      return store;
    };
    const sut: StoreUnderTest = {
      store: await open(),
      async restart() {
        await sut.store.close();
        sut.store = await open();
        return sut.store;
      },
      async dispose() {
        await sut.store.close();
        rmSync(caseDir, { recursive: true, force: true });
      },
    };
    return sut;
  },
});
