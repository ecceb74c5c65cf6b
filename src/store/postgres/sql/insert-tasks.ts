import { FIELD_COUNT, INSERT_ALIASES, INSERT_COLUMNS, insertUnnest } from './task-columns';

const NOW = `$${FIELD_COUNT + 1}`;
const RETENTION = `$${FIELD_COUNT + 2}`;

/**
 * Inserts new tasks with their idempotency keys, in one statement: the only
 * statement that writes a task's definition. A key that another task holds
 * (its expires_ms > now) is not taken, and that new task is not inserted; an
 * expired key is taken over. An id that exists is skipped (a retried commit
 * whose first try had landed).
 *
 * Inputs (positional): 1..N one array per column of the field table
 * (task-columns.ts order), N+1 now (ms), N+2 idempotency retention (ms).
 * Output: rows { id, idempotency_key } of the new tasks with a key that
 * they did not get (a duplicate, or a retried insert whose key is already
 * its own); the caller looks up who holds it.
 */
export const INSERT_TASKS = `
WITH input AS (
  SELECT * FROM unnest(${insertUnnest(1)}) AS i(${INSERT_ALIASES})
), keys AS (
  INSERT INTO idempotency_keys (key, task_id, expires_ms)
  SELECT i.idempotency_key, i.id, i.created_ms + ${RETENTION} FROM input i WHERE i.idempotency_key <> ''
  ON CONFLICT (key) DO UPDATE SET task_id = excluded.task_id, expires_ms = excluded.expires_ms
  WHERE idempotency_keys.expires_ms <= ${NOW}
  RETURNING key, task_id
), inserted AS (
  INSERT INTO tasks (${INSERT_COLUMNS}, seq)
  SELECT ${INSERT_ALIASES.split(', ').map((c) => `i.${c}`).join(', ')}, nextval('task_seq') FROM input i
  WHERE i.idempotency_key = '' OR EXISTS (SELECT 1 FROM keys k WHERE k.key = i.idempotency_key AND k.task_id = i.id)
  ON CONFLICT (id) DO NOTHING
  RETURNING id
)
SELECT i.id, i.idempotency_key FROM input i
WHERE i.idempotency_key <> '' AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.key = i.idempotency_key AND k.task_id = i.id)`;

/**
 * Who holds these idempotency keys (read after INSERT_TASKS, so it sees keys
 * another dispatcher's transaction took meanwhile).
 *
 * Inputs (positional): 1. keys (text[]). Output: rows { key, task_id }.
 */
export const KEY_HOLDERS = `
SELECT key, task_id FROM idempotency_keys WHERE key = ANY($1::text[])`;
