/**
 * Finds the spans during which this process did not run (SIGSTOP, a VM
 * pause, an event loop blocked by synchronous work). The owner calls
 * `observe` from a timer that ticks every `tickMs`, and from any other
 * callback; a gap between two observations longer than a tick plus
 * `toleranceMs` is a stall, reported from when the next tick was due. Pure:
 * time is a parameter.
 */
export class StallDetector {
  private lastObservedMs: number | undefined;

  constructor(
    readonly tickMs: number,
    private readonly toleranceMs: number,
  ) {}

  /** Records that the process runs at `nowMs`; returns the stall that just ended, if any. */
  observe(nowMs: number): { fromMs: number; toMs: number } | undefined {
    const last = this.lastObservedMs;
    this.lastObservedMs = last === undefined ? nowMs : Math.max(last, nowMs);
    if (last === undefined || nowMs - last <= this.tickMs + this.toleranceMs) return undefined;
    return { fromMs: last + this.tickMs, toMs: nowMs };
  }

  /** Stops watching: the next observation starts afresh, so the time unwatched is not reported as a stall. */
  forget(): void {
    this.lastObservedMs = undefined;
  }
}
