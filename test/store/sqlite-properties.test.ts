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
import { describeTaskStoreProperties, reopeningStore } from './task-store.properties';

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
    return reopeningStore(open, () => rmSync(caseDir, { recursive: true, force: true }));
  },
});
