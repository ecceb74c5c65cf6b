/**
 * Deletes up to a limit of idempotency keys no longer retained
 * (expires_ms <= now: find-by-idempotency-key.ts no longer returns them).
 *
 * Inputs (positional): 1. now (ms), 2. limit.
 * Output: none; changes = keys deleted.
 */
export const PURGE_KEYS = `
DELETE FROM idempotency_keys
WHERE key IN (
  SELECT key FROM idempotency_keys
  WHERE expires_ms <= ?
  ORDER BY expires_ms
  LIMIT ?
)`;
