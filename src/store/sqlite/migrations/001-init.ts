/**
 * Migration 1: the initial schema. Shipped; never edit. Change the schema
 * with a new numbered file registered in ../migrate.ts.
 *
 * tasks             one row per TaskRecord (src/core/task.ts), columns in snake_case.
 *                   labels and error are JSON text; payload and result are BLOBs.
 * idempotency_keys  key -> task id, retained until expires_ms.
 *
 * Invariant: tasks_unfinished_by_seq and tasks_finished_by_updated_ms partition
 * the tasks by the same state list that load-unfinished.ts and
 * purge-finished.ts use, so the planner can use them (a partial index is only
 * usable when the query repeats its WHERE term).
 */
export const MIGRATION_001_INIT = `
CREATE TABLE tasks (
  id                           TEXT    PRIMARY KEY,
  queue                        TEXT    NOT NULL,
  priority                     INTEGER NOT NULL,
  payload                      BLOB    NOT NULL,
  content_type                 TEXT    NOT NULL,
  labels                       TEXT    NOT NULL,
  preferred_zone               TEXT    NOT NULL,
  idempotency_key              TEXT    NOT NULL,
  state                        TEXT    NOT NULL
    CHECK (state IN ('PENDING', 'ASSIGNED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
  attempt                      INTEGER NOT NULL,
  max_attempts                 INTEGER NOT NULL,
  version                      INTEGER NOT NULL,
  attempt_timeout_ms           INTEGER NOT NULL,
  schedule_to_start_timeout_ms INTEGER NOT NULL,
  not_before_ms                INTEGER NOT NULL,
  created_ms                   INTEGER NOT NULL,
  updated_ms                   INTEGER NOT NULL,
  session_id                   TEXT    NOT NULL,
  worker_id                    TEXT    NOT NULL,
  attempt_deadline_ms          INTEGER NOT NULL,
  progress_permille            INTEGER NOT NULL,
  result                       BLOB,
  error                        TEXT,
  seq                          INTEGER NOT NULL
) STRICT;

CREATE INDEX tasks_unfinished_by_seq ON tasks (seq)
  WHERE state NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');

CREATE INDEX tasks_finished_by_updated_ms ON tasks (updated_ms)
  WHERE state IN ('COMPLETED', 'FAILED', 'CANCELLED');

CREATE TABLE idempotency_keys (
  key        TEXT    PRIMARY KEY,
  task_id    TEXT    NOT NULL,
  expires_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_keys_by_expires_ms ON idempotency_keys (expires_ms);
`;
