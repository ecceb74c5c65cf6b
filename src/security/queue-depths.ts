import { BoundedMap } from '../core/bounded-map';
import type { Clock } from '../core/clock';

/** Queues whose figures are kept; past it the oldest is forgotten and read again when next submitted to. */
const MAX_QUEUES_TRACKED = 10_000;

interface QueueFigures {
  /** The store's PENDING count at the last read, plus what this dispatcher accepted since. */
  count: number;
  /** Tasks admitted whose submit has not finished yet (so concurrent submits see each other). */
  inFlight: number;
  readAtMs: number;
  reading: Promise<void> | undefined;
}

/**
 * Tasks waiting (PENDING, delayed ones included) per queue, for the
 * `maxQueued` caps: each queue's own count from the store (TaskStore
 * pendingCount), read again when older than `maxAgeMs`, plus what this
 * dispatcher accepted since. Each queue is read on its own, so no number of
 * other queues can hide one. Other dispatchers sharing a PostgreSQL store add
 * theirs at the next read, so a cap may be passed by what they accept within
 * `maxAgeMs`: it bounds the backlog, it is not an exact quota. A read that
 * fails keeps the last figures (or none: a queue never read admits, since the
 * store answering the submit is checked on its own).
 *
 * Invariant: at most one read per queue is in flight.
 */
export class QueueDepths {
  private readonly queues = new BoundedMap<string, QueueFigures>(MAX_QUEUES_TRACKED);

  constructor(
    private readonly read: (queue: string) => Promise<number>,
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
    let figures = this.queues.get(queue);
    if (figures === undefined) {
      figures = { count: 0, inFlight: 0, readAtMs: -Infinity, reading: undefined };
      this.queues.set(queue, figures);
    }
    if (this.clock.nowMs() - figures.readAtMs >= this.maxAgeMs) await this.refresh(queue, figures);
    const depth = figures.count + figures.inFlight;
    if (depth + n > cap) return { admitted: false, depth };
    figures.inFlight += n;
    const held = figures;
    let settled = false;
    return {
      admitted: true,
      settle: (accepted) => {
        if (settled) return;
        settled = true;
        held.inFlight -= n;
        held.count += accepted;
      },
    };
  }

  private refresh(queue: string, figures: QueueFigures): Promise<void> {
    figures.reading ??= this.read(queue).then(
      (count) => {
        figures.count = count;
        figures.readAtMs = this.clock.nowMs();
        figures.reading = undefined;
      },
      (err: unknown) => {
        // Asked again after maxAgeMs, not at every submit while the store is down.
        figures.readAtMs = this.clock.nowMs();
        this.onError(err);
        figures.reading = undefined;
      },
    );
    return figures.reading;
  }
}
