/**
 * Maps an idempotency key to a task until expires_ms. A key already mapped is
 * re-pointed (the caller checked the old mapping had expired), but never to an
 * older mapping: re-committing an old task whose key was since taken over by a
 * newer task (larger expires_ms) leaves the newer mapping in place.
 *
 * Inputs (named): @key, @task_id, @expires_ms (createdMs + retention).
 * Output: none; changes = 0 when the newer mapping was kept.
 */
export const UPSERT_IDEMPOTENCY_KEY = `
INSERT INTO idempotency_keys (key, task_id, expires_ms)
VALUES (@key, @task_id, @expires_ms)
ON CONFLICT (key) DO UPDATE SET
  task_id = excluded.task_id,
  expires_ms = excluded.expires_ms
WHERE excluded.expires_ms >= idempotency_keys.expires_ms`;
