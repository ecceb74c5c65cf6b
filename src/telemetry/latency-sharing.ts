import { createLogger } from '../log';
import type { SharedLatency } from '../store/task-store';
import { SLOT_MS, WINDOWS_MS, type LatencyMatrix, type SlotRow } from './latency-matrix';

const log = createLogger('latency-sharing');
const KEEP_MS = WINDOWS_MS['1h'] + SLOT_MS;

/**
 * Shares this dispatcher's latency rows through the store (PostgreSQL) and
 * merges everyone else's, so any dispatcher's heatmap page shows all of
 * them. Every `intervalMs` it rewrites its rows of the last two slots (a
 * sample may land in the previous slot just before it turns) and reads the
 * others' rows written since its last read; the first read takes the whole
 * hour. Once a minute it deletes rows older than the hour. Failures are
 * logged and retried at the next turn; the page then shows what it has.
 */
export class LatencySharing {
  private timer: NodeJS.Timeout | undefined;
  private lastReadMs = 0;
  private lastPurgeMs = 0;
  private running: Promise<void> | undefined;
  /** Other dispatchers heard from: id -> when. */
  readonly peers = new Map<string, number>();

  constructor(
    private readonly shared: SharedLatency,
    private readonly matrix: LatencyMatrix,
    private readonly selfId: string,
    private readonly nowMs: () => number,
    private readonly intervalMs = SLOT_MS,
    private readonly onError: (error: unknown) => void = (error) => log.warn('sharing latency rows through the store failed; retrying at the next turn', { error }),
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.turn(), this.intervalMs);
    this.timer.unref();
    void this.turn();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One write, read and (maybe) purge; concurrent calls share the one in progress. */
  turn(): Promise<void> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(): Promise<void> {
    const now = this.nowMs();
    try {
      await this.shared.write(this.selfId, this.matrix.localRows(now - 2 * SLOT_MS));
      const since = this.lastReadMs === 0 ? now - KEEP_MS : this.lastReadMs - 2 * SLOT_MS;
      const byDispatcher = await this.shared.read(since, this.selfId);
      for (const [id, rows] of byDispatcher) {
        this.matrix.mergeRemote(id, rows as SlotRow[], now);
        this.peers.set(id, now);
      }
      this.lastReadMs = now;
      if (now - this.lastPurgeMs >= 60_000) {
        this.lastPurgeMs = now;
        await this.shared.purge(now - KEEP_MS);
      }
    } catch (err) {
      this.onError(err);
    }
  }
}
