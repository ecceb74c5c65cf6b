import { TASK_COLUMNS, takesAtOnce } from './task-columns';

/**
 * Starts a transaction that claims. The claim statements below must walk
 * tasks_ready in claim order; a planner without statistics (a table that
 * grew by a bulk load before autovacuum analyzed it, or autovacuum off)
 * may instead take tasks_pending_by_ready_at and sort the whole backlog:
 * about a second per claim at 1,000,000 queued tasks, measured. PostgreSQL
 * has no index hints; disabling sorts for the transaction leaves the one
 * plan that needs none. The other statements of a commit sort nothing.
 */
export const BEGIN_CLAIMING = 'BEGIN; SET LOCAL enable_sort = off';

/**
 * Claims ready tasks of one queue for one group of sessions: up to one per
 * slot ($5/$6: session and worker of each free slot), by priority then FIFO,
 * walking the partial index tasks_ready, and skipping rows another
 * dispatcher's claim has locked (FOR UPDATE SKIP LOCKED), so two claims
 * never take the same task and never wait for each other. Each task claimed
 * is bound to a slot and set ASSIGNED to the owner, with its lease and its
 * attempt's deadline, in the same conditional write.
 *
 * CLAIM_AT_ONCE takes the PENDING tasks of $1 ready by $2 that sessions of
 * zone $3 on a dispatcher of zone $4 take at once (core/claim-rules.ts).
 * Inputs: 1. queue, 2. now, 3. zone, 4. dispatcher zone, 5. session ids
 * (text[]), 6. worker ids (text[]), 7. owner, 8. lease_expires_ms.
 *
 * CLAIM_SPILLED takes the others, ready since $9 (now - spillover delay).
 * Inputs: the same, and 9. spilled_by.
 *
 * Output: PgTaskRows of the tasks claimed, as written, each with `slot`
 * (0-based, into the arrays given).
 */
function claim(where: string): string {
  return `
WITH picked AS (
  SELECT t.id FROM tasks t
  WHERE t.state = 'PENDING' AND t.queue = $1 AND ${where}
  ORDER BY t.priority DESC, t.seq
  LIMIT cardinality($5::text[])
  FOR UPDATE SKIP LOCKED
), numbered AS (
  SELECT id, row_number() OVER () AS n FROM picked
), slots AS (
  SELECT s.session_id, s.worker_id, s.n FROM unnest($5::text[], $6::text[]) WITH ORDINALITY AS s(session_id, worker_id, n)
)
UPDATE tasks t SET
  state = 'ASSIGNED',
  owner = $7,
  dispatcher_zone = $4,
  lease_expires_ms = $8,
  session_id = slots.session_id,
  worker_id = slots.worker_id,
  worker_zone = $3,
  attempt_deadline_ms = $2 + t.attempt_timeout_ms,
  progress_permille = 0,
  version = t.version + 1,
  updated_ms = $2
FROM numbered JOIN slots ON slots.n = numbered.n
WHERE t.id = numbered.id
RETURNING ${TASK_COLUMNS}, slots.n - 1 AS slot`;
}

export const CLAIM_AT_ONCE = claim(`t.ready_at_ms <= $2 AND ${takesAtOnce('$3', '$4')}`);
export const CLAIM_SPILLED = claim(`t.ready_at_ms <= $9 AND NOT ${takesAtOnce('$3', '$4')}`);

/**
 * When a claim that came back short may find something (run in the claim's
 * transaction): the first PENDING task of $1 that becomes ready after $2
 * (for another zone's task this may be early: one more short claim), and the
 * first ready task of another zone still inside its spillover delay (ready
 * since $3 = now - delay; the caller adds the delay). Both are index ranges
 * of tasks_pending_by_ready_at.
 *
 * Inputs (positional): 1. queue, 2. now, 3. spilled_by, 4. zone, 5. dispatcher zone.
 * Output: one row { ready_at, spill_ready_at } (NULL when none).
 */
export const NEXT_CLAIMABLE = `
SELECT
  (SELECT min(t.ready_at_ms) FROM tasks t WHERE t.state = 'PENDING' AND t.queue = $1 AND t.ready_at_ms > $2) AS ready_at,
  (SELECT min(t.ready_at_ms) FROM tasks t WHERE t.state = 'PENDING' AND t.queue = $1 AND t.ready_at_ms > $3 AND t.ready_at_ms <= $2 AND NOT ${takesAtOnce('$4', '$5')}) AS spill_ready_at`;
