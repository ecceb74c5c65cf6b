import type { Clock } from '../core/clock';

/**
 * Tasks waiting (PENDING, delayed ones included) per queue, for the
 * `maxQueued` caps: the store's count, read again when older than
 * `maxAgeMs`, plus what this dispatcher accepted since. Other dispatchers
 * sharing a PostgreSQL store add theirs at the next read, so a cap may be
 * passed by what they accept within `maxAgeMs`: it bounds the backlog, it is
 * not an exact quota. A read that fails keeps the last figures (or none: a
 * dispatcher that never read the depths admits, since the store answering
 * the submit is checked on its own).
 *
 * Invariant: at most one read is in flight.
 */
export class QueueDepths {
  private counts = new Map<string, number>();
  /** Tasks admitted towards a cap whose submit has not finished yet (so concurrent submits see each other). */
  private readonly inFlight = new Map<string, number>();
  private readAtMs = -Infinity;
  private reading: Promise<void> | undefined;

  constructor(
    private readonly read: () => Promise<ReadonlyMap<string, number>>,
    private readonly clock: Clock,
    private readonly maxAgeMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /**
   * Admits `n` tasks into `queue` if it stays within `cap` (counting the
   * store's figure, what this dispatcher accepted since, and the submits in
   * flight), reading the store first when the figures are stale. The check
   * and the reservation happen in one step, after the read. Returns the
   * depth seen when refused, or a settle function to call once with how many
   * of the `n` were accepted.
   */
  async admit(queue: string, n: number, cap: number): Promise<{ admitted: false; depth: number } | { admitted: true; settle(accepted: number): void }> {
    if (this.clock.nowMs() - this.readAtMs >= this.maxAgeMs) await this.refresh();
    const flying = this.inFlight.get(queue) ?? 0;
    const depth = (this.counts.get(queue) ?? 0) + flying;
    if (depth + n > cap) return { admitted: false, depth };
    this.inFlight.set(queue, flying + n);
    let settled = false;
    return {
      admitted: true,
      settle: (accepted) => {
        if (settled) return;
        settled = true;
        const left = (this.inFlight.get(queue) ?? n) - n;
        if (left <= 0) this.inFlight.delete(queue);
        else this.inFlight.set(queue, left);
        this.counts.set(queue, (this.counts.get(queue) ?? 0) + accepted);
      },
    };
  }

  private refresh(): Promise<void> {
    this.reading ??= this.read().then(
      (counts) => {
        this.counts = new Map(counts);
        this.readAtMs = this.clock.nowMs();
        this.reading = undefined;
      },
      (err: unknown) => {
        // Asked again after maxAgeMs, not at every submit while the store is down.
        this.readAtMs = this.clock.nowMs();
        this.onError(err);
        this.reading = undefined;
      },
    );
    return this.reading;
  }
}
