/**
 * Deletes up to a limit of terminal tasks last updated before a cutoff,
 * oldest first. The state term repeats the one of the partial index
 * tasks_finished_by_updated_ms (migrations/001-init.ts) word for word.
 *
 * Inputs (positional): 1. finishedBefore (ms, exclusive), 2. limit.
 * Output: none; changes = tasks deleted.
 */
export const PURGE_FINISHED = `
DELETE FROM tasks
WHERE id IN (
  SELECT id FROM tasks
  WHERE state IN ('COMPLETED', 'FAILED', 'CANCELLED') AND updated_ms < ?
  ORDER BY updated_ms
  LIMIT ?
)`;
