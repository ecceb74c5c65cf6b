import { TASK_COLUMNS, takesAtOnce } from './task-columns';

/**
 * Claims ready tasks of one queue for one group of sessions, in one
 * statement: the PENDING tasks of $1 ready by $2 that sessions of zone $4 on
 * a dispatcher of zone $5 take at once, then (while slots remain) the others
 * ready since $3 (now - spillover delay) - each part by priority, then FIFO,
 * walking the partial index tasks_ready - skipping rows another dispatcher's
 * claim has locked (FOR UPDATE SKIP LOCKED), so two claims never take the
 * same task and never wait for each other. Each task claimed is bound to a
 * slot (session, worker) and set ASSIGNED to the owner, with its lease and
 * its attempt's deadline, in the same conditional write.
 *
 * Inputs (positional): 1. queue, 2. now, 3. spilled_by (now - delay), 4. zone,
 * 5. dispatcher zone, 6. slot session ids (text[]), 7. slot worker ids (text[]),
 * 8. owner, 9. lease_expires_ms.
 * Output: PgTaskRows of the tasks claimed, as written, each with `slot` (0-based).
 */
export const CLAIM_TASKS = `
WITH at_once AS (
  SELECT t.id FROM tasks t
  WHERE t.state = 'PENDING' AND t.queue = $1 AND t.ready_at_ms <= $2 AND ${takesAtOnce('$4', '$5')}
  ORDER BY t.priority DESC, t.seq
  LIMIT cardinality($6::text[])
  FOR UPDATE SKIP LOCKED
), spilled AS (
  SELECT t.id FROM tasks t
  WHERE t.state = 'PENDING' AND t.queue = $1 AND t.ready_at_ms <= $3 AND NOT ${takesAtOnce('$4', '$5')}
  ORDER BY t.priority DESC, t.seq
  LIMIT greatest(0, cardinality($6::text[]) - (SELECT count(*) FROM at_once))
  FOR UPDATE SKIP LOCKED
), picked AS (
  SELECT id, row_number() OVER () AS n FROM (SELECT id FROM at_once UNION ALL SELECT id FROM spilled) p
), slots AS (
  SELECT s.session_id, s.worker_id, s.n FROM unnest($6::text[], $7::text[]) WITH ORDINALITY AS s(session_id, worker_id, n)
)
UPDATE tasks t SET
  state = 'ASSIGNED',
  owner = $8,
  dispatcher_zone = $5,
  lease_expires_ms = $9,
  session_id = slots.session_id,
  worker_id = slots.worker_id,
  worker_zone = $4,
  attempt_deadline_ms = $2 + t.attempt_timeout_ms,
  progress_permille = 0,
  version = t.version + 1,
  updated_ms = $2
FROM picked JOIN slots ON slots.n = picked.n
WHERE t.id = picked.id
RETURNING ${TASK_COLUMNS}, slots.n - 1 AS slot`;

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
