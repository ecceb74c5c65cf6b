import { TAKES_AT_ONCE } from './task-columns';

/**
 * When a claim that came back short may find something: the first PENDING
 * task of @queue that becomes ready after @now (NEXT_READY_AT; for another
 * zone's task this may be early, which costs one more short claim), and the
 * first ready task of another zone still inside its spillover delay
 * (NEXT_SPILL_READY_AT, to which the caller adds the delay). Both walk
 * tasks_pending_by_ready_at (migrations/002-ownership.ts) from a bound.
 *
 * Inputs (named): @queue, @now; NEXT_SPILL_READY_AT also @spilled_by (now - delay), @zone, @dispatcher_zone.
 * Output: one row { at } (NULL when none).
 */
export const NEXT_READY_AT = `
SELECT min(t.ready_at_ms) AS at
FROM tasks AS t
WHERE t.state = 'PENDING' AND t.queue = @queue AND t.ready_at_ms > @now`;

export const NEXT_SPILL_READY_AT = `
SELECT min(t.ready_at_ms) AS at
FROM tasks AS t
WHERE t.state = 'PENDING' AND t.queue = @queue AND t.ready_at_ms > @spilled_by AND t.ready_at_ms <= @now AND NOT ${TAKES_AT_ONCE}`;
