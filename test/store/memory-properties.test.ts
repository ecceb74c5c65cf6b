/**
 * The TaskStore properties (task-store.properties.ts) against the in-memory
 * store the core tests use. A store restart wraps the same data in a new
 * MemoryTaskStore, as a process keeps its memory.
 */
import type { TaskStore } from '../../src/store/task-store';
import { MemoryStoreCore, MemoryTaskStore } from '../support/memory-task-store';
import { describeTaskStoreProperties, reopeningStore } from './task-store.properties';

describeTaskStoreProperties('MemoryTaskStore', {
  runs: 200,
  msPerRun: 20,
  make: async () => {
    const core = new MemoryStoreCore();
    const open = async (): Promise<TaskStore> => {
      const store = new MemoryTaskStore(core);
      await store.open();
      return store;
    };
    return reopeningStore(open);
  },
});
