/**
 * The `tasks` columns every task-returning statement selects, in schema
 * order. A fragment, not a statement: each row it yields is a TaskRow
 * (../sqlite-task-store.ts). `t` is the alias the statements give `tasks`.
 */
export const TASK_COLUMNS = `
  t.id, t.queue, t.priority, t.payload, t.content_type, t.labels, t.preferred_zone,
  t.idempotency_key, t.state, t.attempt, t.max_attempts, t.version, t.attempt_timeout_ms,
  t.schedule_to_start_timeout_ms, t.not_before_ms, t.created_ms, t.updated_ms, t.session_id,
  t.worker_id, t.attempt_deadline_ms, t.progress_permille, t.result, t.error, t.seq`;
