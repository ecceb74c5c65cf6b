/**
 * Inserts a task, or fully replaces the row with the same id.
 *
 * Inputs (named): every column of `tasks` as @snake_case (a TaskRow).
 * Output: none; changes = 1.
 */
export const UPSERT_TASK = `
INSERT INTO tasks (
  id, queue, priority, payload, content_type, labels, preferred_zone,
  idempotency_key, state, attempt, max_attempts, version, attempt_timeout_ms,
  schedule_to_start_timeout_ms, not_before_ms, created_ms, updated_ms, session_id,
  worker_id, attempt_deadline_ms, progress_permille, result, error, seq
) VALUES (
  @id, @queue, @priority, @payload, @content_type, @labels, @preferred_zone,
  @idempotency_key, @state, @attempt, @max_attempts, @version, @attempt_timeout_ms,
  @schedule_to_start_timeout_ms, @not_before_ms, @created_ms, @updated_ms, @session_id,
  @worker_id, @attempt_deadline_ms, @progress_permille, @result, @error, @seq
)
ON CONFLICT (id) DO UPDATE SET
  queue = excluded.queue,
  priority = excluded.priority,
  payload = excluded.payload,
  content_type = excluded.content_type,
  labels = excluded.labels,
  preferred_zone = excluded.preferred_zone,
  idempotency_key = excluded.idempotency_key,
  state = excluded.state,
  attempt = excluded.attempt,
  max_attempts = excluded.max_attempts,
  version = excluded.version,
  attempt_timeout_ms = excluded.attempt_timeout_ms,
  schedule_to_start_timeout_ms = excluded.schedule_to_start_timeout_ms,
  not_before_ms = excluded.not_before_ms,
  created_ms = excluded.created_ms,
  updated_ms = excluded.updated_ms,
  session_id = excluded.session_id,
  worker_id = excluded.worker_id,
  attempt_deadline_ms = excluded.attempt_deadline_ms,
  progress_permille = excluded.progress_permille,
  result = excluded.result,
  error = excluded.error,
  seq = excluded.seq`;
