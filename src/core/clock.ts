/** The core never reads the wall clock or randomness itself; both are passed in. */
export interface Clock {
  nowMs(): number;
}

/** Returns a number in [0, 1). */
export type Random = () => number;

export const systemClock: Clock = { nowMs: () => Date.now() };

/** A clock for tests and simulations: time moves only when told to. */
export class ManualClock implements Clock {
  private currentMs: number;
  constructor(startMs = 1_700_000_000_000) {
    this.currentMs = startMs;
  }
  nowMs(): number {
    return this.currentMs;
  }
  advance(ms: number): number {
    this.currentMs += ms;
    return this.currentMs;
  }
  set(ms: number): void {
    this.currentMs = ms;
  }
}
