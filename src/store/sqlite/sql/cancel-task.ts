/**
 * Cancels a task whoever holds it (core/store-cancel.ts), while it is still the version read (the
 * caller read it in the same transaction and checked it is not terminal).
 *
 * Inputs (named): @id, @version, @error (JSON ErrorInfo), @now.
 * Output: none; changes = 1 when cancelled.
 */
export const CANCEL_TASK = `
UPDATE tasks SET
  state = 'CANCELLED',
  owner = '',
  lease_expires_ms = 0,
  session_id = '',
  attempt_deadline_ms = 0,
  result = NULL,
  error = @error,
  version = version + 1,
  updated_ms = @now
WHERE id = @id AND version = @version`;
