/**
 * Takes an idempotency key for a new task: inserts it, or takes it over when
 * the task that held it let it expire (expires_ms <= now). A key that another
 * task still holds is left alone.
 *
 * Inputs (named): @key, @task_id, @expires_ms (createdMs + retention), @now.
 * Output: none; changes = 1 when the key is now @task_id's, 0 when another task holds it.
 */
export const TAKE_IDEMPOTENCY_KEY = `
INSERT INTO idempotency_keys (key, task_id, expires_ms)
VALUES (@key, @task_id, @expires_ms)
ON CONFLICT (key) DO UPDATE SET
  task_id = excluded.task_id,
  expires_ms = excluded.expires_ms
WHERE idempotency_keys.expires_ms <= @now`;
