/**
 * Claims one ready task for a session: owner, lease, session and the
 * attempt's deadline in one conditional write (only while it is still the
 * PENDING version the claim read).
 *
 * Inputs (named): @id, @version (the version read), @owner, @dispatcher_zone,
 * @lease_expires_ms, @session_id, @worker_id, @worker_zone, @now.
 * Output: none; changes = 1 when claimed.
 */
export const CLAIM_TASK = `
UPDATE tasks SET
  state = 'ASSIGNED',
  owner = @owner,
  dispatcher_zone = @dispatcher_zone,
  lease_expires_ms = @lease_expires_ms,
  session_id = @session_id,
  worker_id = @worker_id,
  worker_zone = @worker_zone,
  attempt_deadline_ms = @now + attempt_timeout_ms,
  progress_permille = 0,
  version = version + 1,
  updated_ms = @now
WHERE id = @id AND version = @version AND state = 'PENDING'`;
