import type { Socket } from 'node:net';
import type { Faults } from './fault-proxy';

/**
 * One direction of one proxied connection: bytes read from `source` wait in
 * a queue until their delivery time, then are written to `dest` at most as
 * fast as the bandwidth limit allows.
 *
 * Invariants:
 * - `queue` is ordered by `dueAt` (each chunk's due time is at least the
 *   previous one's), so jitter delays chunks but never reorders them.
 * - `timer` is set iff the head chunk (or the bandwidth budget) is not due
 *   yet and nothing else (pause, blackhole, a full `dest`) holds the queue.
 * - `heldBytes` is the sum of the queued chunks' lengths.
 * - Once `closed`, nothing is written, scheduled or counted again.
 */

/** How often a bandwidth-limited pipe writes: each write carries this many ms of budget. */
const SLICE_MS = 10;
/** Stop reading the source when this many bytes are queued (slow or paused link), resume below LOW_WATER. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
const LOW_WATER_BYTES = 1024 * 1024;

interface Chunk {
  data: Buffer;
  /** performance.now() time before which no byte of this chunk is written. */
  dueAt: number;
}

export interface PipeCounters {
  forwarded(bytes: number): void;
  dropped(bytes: number): void;
}

export class FaultPipe {
  private readonly queue: Chunk[] = [];
  private heldBytes = 0;
  private lastDueAt = 0;
  /** Bandwidth pacing: earliest time the next slice may be written. */
  private nextSendAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingForDrain = false;
  private sourcePaused = false;
  private sourceEnded = false;
  private endSent = false;
  /** Destroy `dest` once its end has been flushed (the source side is already gone). */
  private destroyDestAfterEnd = false;
  private closed = false;

  constructor(
    private readonly source: Socket,
    private readonly dest: Socket,
    private readonly faults: () => Faults,
    private readonly random: () => number,
    private readonly counters: PipeCounters,
  ) {
    source.on('data', (data: Buffer) => this.accept(data));
    source.on('end', () => this.endSource(false));
    dest.on('drain', () => {
      if (!this.waitingForDrain) return;
      this.waitingForDrain = false;
      this.pump();
    });
  }

  get held(): number {
    return this.heldBytes;
  }

  /**
   * The source will send nothing more: end `dest` once the queue is flushed.
   * With `thenDestroy`, also destroy `dest` after that end is written (used
   * when the source socket closed without a half-close we could mirror).
   */
  endSource(thenDestroy: boolean): void {
    if (this.closed) return;
    this.sourceEnded = true;
    if (thenDestroy && !this.destroyDestAfterEnd) {
      this.destroyDestAfterEnd = true;
      if (this.endSent) {
        if (this.dest.writableFinished) this.dest.destroy();
        else this.dest.once('finish', () => this.dest.destroy());
      }
    }
    this.pump();
  }

  /** Re-reads the faults: call after they change. */
  refresh(): void {
    this.pump();
  }

  /** Drops the queue and every timer; the sockets are the caller's. */
  close(): void {
    this.closed = true;
    this.clearTimer();
    this.queue.length = 0;
    this.heldBytes = 0;
  }

  private accept(data: Buffer): void {
    if (this.closed) return;
    const faults = this.faults();
    if (faults.blackhole) {
      this.counters.dropped(data.length);
      return;
    }
    const now = performance.now();
    const delayMs = Math.max(0, faults.latencyMs + (2 * this.random() - 1) * faults.jitterMs);
    const dueAt = Math.max(now + delayMs, this.lastDueAt);
    this.lastDueAt = dueAt;
    this.queue.push({ data, dueAt });
    this.heldBytes += data.length;
    if (this.heldBytes > HIGH_WATER_BYTES && !this.sourcePaused) {
      this.sourcePaused = true;
      this.source.pause();
    }
    // A pending timer or drain will reach this chunk: it is behind the head.
    if (this.timer === undefined && !this.waitingForDrain) this.pump();
  }

  /** Writes every chunk that is due, then schedules the next wake-up. */
  private pump(): void {
    if (this.closed) return;
    this.clearTimer();
    const faults = this.faults();
    if (faults.blackhole) {
      // A dead link loses what was in flight too. The end (FIN) is kept: it goes out once the link is back.
      if (this.heldBytes > 0) this.counters.dropped(this.heldBytes);
      this.queue.length = 0;
      this.heldBytes = 0;
      this.lastDueAt = 0; // nothing queued is left to keep in order
      this.resumeSourceIfLow();
      return;
    }
    if (faults.paused || this.waitingForDrain) return;
    if (this.dest.destroyed) {
      this.close();
      return;
    }
    const now = performance.now();
    const bandwidth = faults.bandwidthBytesPerSec;
    for (;;) {
      const head = this.queue[0];
      if (head === undefined) break;
      if (head.dueAt > now) return this.schedule(head.dueAt - now);
      let part = head.data;
      if (bandwidth > 0) {
        if (this.nextSendAt > now) return this.schedule(this.nextSendAt - now);
        const sliceBytes = Math.max(1, Math.floor((bandwidth * SLICE_MS) / 1000));
        if (part.length > sliceBytes) part = part.subarray(0, sliceBytes);
        // At most one slice of credit after an idle spell, so timer lateness does not cut the rate.
        this.nextSendAt = Math.max(this.nextSendAt, now - SLICE_MS) + (part.length * 1000) / bandwidth;
      }
      if (part === head.data) this.queue.shift();
      else head.data = head.data.subarray(part.length);
      this.heldBytes -= part.length;
      this.counters.forwarded(part.length);
      if (!this.dest.write(part)) {
        this.waitingForDrain = true;
        break;
      }
    }
    this.resumeSourceIfLow();
    if (this.queue.length === 0 && this.sourceEnded && !this.endSent) {
      this.endSent = true;
      if (this.destroyDestAfterEnd) this.dest.end(() => this.dest.destroy());
      else this.dest.end();
    }
  }

  private resumeSourceIfLow(): void {
    if (!this.sourcePaused || this.heldBytes > LOW_WATER_BYTES) return;
    this.sourcePaused = false;
    this.source.resume();
  }

  private schedule(delayMs: number): void {
    // Timers may fire up to a millisecond early against performance.now(); pump() re-checks and waits again.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.max(1, Math.ceil(delayMs)));
  }

  private clearTimer(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
