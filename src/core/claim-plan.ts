import type { ClaimGroup } from './commit-batch';
import type { SessionState } from './session';

/** The most slots one claim round offers a queue: larger credit is claimed over several rounds. */
export const MAX_CLAIM_SLOTS = 512;

/**
 * The claim groups for one queue: the free slots of `sessions` (in their
 * round-robin order), one slot from each in turn, so a claim that comes back
 * short still spreads over the sessions; split by the sessions' zone (the
 * store orders each group's tasks for its zone), in order of first
 * appearance. `credit` says how many slots each session offers.
 */
export function planQueueClaims(queue: string, sessions: readonly SessionState[], credit: (s: SessionState) => number, maxSlots = MAX_CLAIM_SLOTS): ClaimGroup[] {
  const left = sessions.map((s) => ({ session: s, n: credit(s) })).filter((e) => e.n > 0);
  const byZone = new Map<string, ClaimGroup>();
  let total = 0;
  while (left.length > 0 && total < maxSlots) {
    for (let i = 0; i < left.length && total < maxSlots; ) {
      const entry = left[i]!;
      let group = byZone.get(entry.session.zone);
      if (group === undefined) {
        group = { queue, zone: entry.session.zone, slots: [] };
        byZone.set(entry.session.zone, group);
      }
      group.slots.push({ sessionId: entry.session.id, workerId: entry.session.workerId });
      total += 1;
      entry.n -= 1;
      if (entry.n === 0) left.splice(i, 1);
      else i += 1;
    }
  }
  return [...byZone.values()];
}
