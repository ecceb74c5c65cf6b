import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { createLogger } from '../../log';

const log = createLogger('sqlite-store');

/** Least time between two checkpoints: a burst of commits is copied back in one go. */
const CHECKPOINT_SPACING_MS = 500;
/**
 * WAL frames (4 KiB pages) above which a checkpoint also restarts the log:
 * under continuous writes a PASSIVE checkpoint may never catch up at the
 * instant a commit starts, and only then can SQLite rewind the file.
 */
const RESTART_ABOVE_FRAMES = 8_192;

/**
 * The thread's code, as plain JavaScript so the same file runs from
 * `dist/` and under the test runner (a Worker cannot load TypeScript).
 * It opens its own connection to the file, and on every `wal` message runs
 * a PASSIVE checkpoint (never blocks the dispatcher's writes), at most one
 * per spacing; when the log stays long it runs a RESTART, which waits for
 * the writer's current transaction and lets the next one rewind the file.
 */
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs);
let lastMs = 0;
let due = false;
let timer;
const run = () => {
  timer = undefined;
  due = false;
  lastMs = Date.now();
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    if (row && row.log > workerData.restartAboveFrames) db.pragma('wal_checkpoint(RESTART)');
    parentPort.postMessage({ kind: 'done' });
  } catch (err) {
    parentPort.postMessage({ kind: 'failed', message: String(err && err.message || err) });
  }
};
parentPort.on('message', (m) => {
  if (m === 'close') {
    if (timer) clearTimeout(timer);
    try { db.close(); } finally { parentPort.close(); }
    return;
  }
  if (due) return;
  due = true;
  const waitMs = lastMs + workerData.spacingMs - Date.now();
  if (waitMs > 0) timer = setTimeout(run, waitMs);
  else run();
});
`;

/**
 * Copies the WAL back into the database file on a thread of its own.
 *
 * Why: with SQLite's automatic checkpoint, the commit that crosses 1,000 WAL
 * pages copies them back (and, with synchronous NORMAL, fsyncs the file)
 * inside the dispatcher's event loop: on this machine commits of 64 tasks
 * had a p99 of 5-6 ms against a p50 of 0.6 ms, all of it checkpoints.
 * The main connection turns its automatic checkpoint off and calls
 * `wrote()` after each commit; this thread does the copying on another
 * connection, beside the writes (docs/performance.md). No library does
 * this for better-sqlite3, so it is ours: a worker thread and a message.
 *
 * If the thread fails, the main connection takes its automatic checkpoints
 * back: nothing waits on the thread, and nothing is lost without it (the
 * WAL is the durable copy; the checkpoint only moves pages).
 */
export class WalCheckpointer {
  private readonly worker: Worker;
  /** A checkpoint was asked for and the thread has not answered yet. */
  private pending = false;
  /** Something was written since the last request: the thread's answer asks again. */
  private dirty = false;
  private stopped = false;

  constructor(
    private readonly main: Database.Database,
    path: string,
    busyTimeoutMs: number,
  ) {
    this.worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { path, driver: require.resolve('better-sqlite3'), busyTimeoutMs, spacingMs: CHECKPOINT_SPACING_MS, restartAboveFrames: RESTART_ABOVE_FRAMES },
    });
    // The thread keeps no process alive by itself: a dispatcher that is done exits.
    this.worker.unref();
    main.pragma('wal_autocheckpoint = 0');
    this.worker.on('message', (m: { kind: string; message?: string }) => {
      this.pending = false;
      if (m.kind === 'failed') log.warn('a background WAL checkpoint failed; it is asked for again after the next write', { error: m.message });
      else if (this.dirty) this.request();
    });
    this.worker.on('error', (err) => this.fallBack(err));
    this.worker.on('exit', (code) => {
      if (!this.stopped) this.fallBack(new Error(`the checkpoint thread exited with code ${code}`));
    });
  }

  /** After a commit: the WAL grew, a checkpoint is due (one message per checkpoint at most). */
  wrote(): void {
    this.dirty = true;
    if (!this.pending) this.request();
  }

  private request(): void {
    if (this.stopped) return;
    this.dirty = false;
    this.pending = true;
    this.worker.postMessage('wal');
  }

  /** Stops the thread; its connection closes. The main connection checkpoints when it closes. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('close');
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }

  private fallBack(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    log.warn('the background WAL checkpoint thread stopped; checkpoints run in the commit again', { error: err.message });
    try {
      this.main.pragma('wal_autocheckpoint = 1000');
    } catch {
      // The main connection is closed: nothing to checkpoint.
    }
  }
}
