/**
 * Claims one ready task for a session: owner, lease, session and the
 * attempt's deadline in one conditional write (only while it is still the
 * PENDING version the claim read).
 *
 * Inputs (positional, in this order; bound by position because a claim runs
 * once per task claimed and named binding cost a lookup per parameter):
 * owner, dispatcher_zone, lease_expires_ms, session_id, worker_id,
 * worker_zone, now (the attempt's deadline is now + attempt_timeout_ms), now
 * (updated_ms), id, version (the version read).
 * Output: none; changes = 1 when claimed.
 */
export const CLAIM_TASK = `
UPDATE tasks SET
  state = 'ASSIGNED',
  owner = ?,
  dispatcher_zone = ?,
  lease_expires_ms = ?,
  session_id = ?,
  worker_id = ?,
  worker_zone = ?,
  attempt_deadline_ms = ? + attempt_timeout_ms,
  progress_permille = 0,
  version = version + 1,
  updated_ms = ?
WHERE id = ? AND version = ? AND state = 'PENDING'`;
