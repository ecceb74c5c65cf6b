/** What one engine believes the store holds for one queue. */
interface QueueBacklog {
  /**
   * Ready tasks that may be waiting ahead of a new one: this engine's own
   * releases since its last claim came back short, or Infinity when it
   * cannot know (after a start, another dispatcher's wake-up, a recheck).
   */
  waiting: number;
  /** From when a task not ready yet may be (a delay, a backoff, a spillover); Infinity if none known. */
  dueAtMs: number;
  /** Slots of the claim in flight; 0 when none is. */
  claiming: number;
  /** Releases since the claim in flight was planned: its transaction cannot see them. */
  sincePlan: number;
  /** Whether unknown tasks may have arrived since the claim in flight was planned. */
  unknownSincePlan: boolean;
}

/**
 * The engine's picture of the ready tasks waiting in the store, per queue:
 * whether a new task may go to a free session at once (nothing older waits
 * for it), and whether a claim may find something. Pure bookkeeping.
 *
 * A claim that comes back short (fewer tasks than slots) proves nothing
 * claimable waits: the count drops to what was released after the claim was
 * planned (its transaction could not see those). A full claim leaves the
 * count as it expected.
 */
export class Backlog {
  private readonly queues = new Map<string, QueueBacklog>();

  private entry(queue: string): QueueBacklog {
    let entry = this.queues.get(queue);
    if (entry === undefined) {
      entry = { waiting: Infinity, dueAtMs: Infinity, claiming: 0, sincePlan: 0, unknownSincePlan: false };
      this.queues.set(queue, entry);
    }
    return entry;
  }

  /** This engine wrote a task PENDING (new, or a retry), ready at `readyAtMs`. */
  released(queue: string, readyAtMs: number, nowMs: number): void {
    const entry = this.entry(queue);
    if (readyAtMs <= nowMs) {
      entry.waiting += 1;
      if (entry.claiming > 0) entry.sincePlan += 1;
    } else {
      entry.dueAtMs = Math.min(entry.dueAtMs, readyAtMs);
    }
  }

  /** Tasks this engine did not write may be ready at `atMs`: a wake-up, a session that may find old tasks, a recheck. */
  unknown(queue: string, atMs: number, nowMs: number): void {
    const entry = this.entry(queue);
    if (atMs <= nowMs) {
      entry.waiting = Infinity;
      if (entry.claiming > 0) entry.unknownSincePlan = true;
    } else {
      entry.dueAtMs = Math.min(entry.dueAtMs, atMs);
    }
  }

  /** Whether a new ready task may go to a session at once: nothing claimable waits ahead of it. */
  mayAssignAtOnce(queue: string, nowMs: number): boolean {
    const entry = this.queues.get(queue);
    return entry !== undefined && entry.waiting === 0 && entry.dueAtMs > nowMs;
  }

  /** Whether a claim for free slots of this queue may find something, and none is in flight. */
  claimDue(queue: string, nowMs: number): boolean {
    const entry = this.queues.get(queue);
    if (entry === undefined) return true;
    return entry.claiming === 0 && (entry.waiting > 0 || entry.dueAtMs <= nowMs);
  }

  /** A claim of `slots` slots is planned for this queue (it goes in the next commit). */
  planned(queue: string, slots: number, nowMs: number): void {
    const entry = this.entry(queue);
    entry.claiming = slots;
    entry.sincePlan = 0;
    entry.unknownSincePlan = false;
    entry.waiting = Math.max(0, entry.waiting - slots);
    if (entry.dueAtMs <= nowMs) entry.dueAtMs = Infinity;
  }

  /**
   * The claim came back; `short` when every group of it got fewer tasks than
   * slots, and then the store said when something may become claimable (`nextAtMs`).
   */
  claimed(queue: string, short: boolean, nextAtMs: number | undefined): void {
    const entry = this.entry(queue);
    if (short) {
      // Nothing claimable was left: only what came since the claim was planned waits.
      entry.waiting = entry.unknownSincePlan ? Infinity : entry.sincePlan;
      if (nextAtMs !== undefined) entry.dueAtMs = Math.min(entry.dueAtMs, nextAtMs);
    }
    entry.claiming = 0;
    entry.sincePlan = 0;
    entry.unknownSincePlan = false;
  }

  /** The commit holding the claim failed: nothing is known any more. */
  failed(queue: string): void {
    const entry = this.entry(queue);
    entry.claiming = 0;
    entry.sincePlan = 0;
    entry.unknownSincePlan = false;
    entry.waiting = Infinity;
  }

  /** Every queue may hold tasks this engine does not know of. */
  unknownAll(nowMs: number): void {
    for (const queue of this.queues.keys()) this.unknown(queue, nowMs, nowMs);
  }

  /** The earliest future instant a claim of one of `queues` may find something. */
  nextDueAtMs(nowMs: number, queues: Iterable<string>): number | undefined {
    let next: number | undefined;
    for (const queue of queues) {
      const at = this.queues.get(queue)?.dueAtMs ?? Infinity;
      if (at > nowMs && at !== Infinity && (next === undefined || at < next)) next = at;
    }
    return next;
  }
}
