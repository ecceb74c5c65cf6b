/**
 * PostgreSQL migration 1: the initial schema, in the dispatchers' schema
 * (search_path). Shipped; never edit. Change the schema with a new numbered
 * file registered in ../migrate.ts.
 *
 * tasks             one row per TaskRecord (core/task-fields.ts), columns in
 *                   snake_case; every integer is bigint; labels and error are
 *                   jsonb; payload and result are bytea. seq is the FIFO place
 *                   among PENDING tasks (from task_seq).
 * idempotency_keys  key -> task, held until expires_ms.
 * dispatchers       one row per dispatcher process; a task whose owner's row
 *                   expired (or is gone) is re-queued by a live dispatcher.
 *
 * Invariants: tasks_ready, tasks_pending_by_ready_at and tasks_start_deadline
 * index exactly the PENDING tasks and tasks_held_by_owner the held ones (the
 * statements repeat each WHERE term word for word, so the planner can use
 * them). The tasks table churns like a queue: autovacuum visits it after 1 %
 * of its rows changed instead of 20 %.
 */
export const PG_MIGRATION_001_INIT = `
CREATE SEQUENCE task_seq;

CREATE TABLE tasks (
  id                           text   PRIMARY KEY,
  payload                      bytea  NOT NULL,
  queue                        text   NOT NULL,
  priority                     bigint NOT NULL,
  content_type                 text   NOT NULL,
  idempotency_key              text   NOT NULL,
  max_attempts                 bigint NOT NULL,
  attempt_timeout_ms           bigint NOT NULL,
  schedule_to_start_timeout_ms bigint NOT NULL,
  labels                       jsonb  NOT NULL,
  preferred_zone               text   NOT NULL,
  producer_zone                text   NOT NULL,
  accepted_zone                text   NOT NULL,
  created_ms                   bigint NOT NULL,
  state                        text   NOT NULL
    CHECK (state IN ('PENDING', 'ASSIGNED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
  attempt                      bigint NOT NULL,
  version                      bigint NOT NULL,
  owner                        text   NOT NULL,
  dispatcher_zone              text   NOT NULL,
  lease_expires_ms             bigint NOT NULL,
  session_id                   text   NOT NULL,
  worker_id                    text   NOT NULL,
  worker_zone                  text   NOT NULL,
  attempt_deadline_ms          bigint NOT NULL,
  progress_permille            bigint NOT NULL,
  result                       bytea,
  error                        jsonb,
  not_before_ms                bigint NOT NULL,
  ready_at_ms                  bigint NOT NULL,
  start_deadline_ms            bigint NOT NULL,
  updated_ms                   bigint NOT NULL,
  seq                          bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);

CREATE INDEX tasks_ready ON tasks (queue, priority DESC, seq)
  WHERE state = 'PENDING';

CREATE INDEX tasks_pending_by_ready_at ON tasks (queue, ready_at_ms)
  WHERE state = 'PENDING';

CREATE INDEX tasks_start_deadline ON tasks (start_deadline_ms)
  WHERE state = 'PENDING' AND start_deadline_ms > 0;

CREATE INDEX tasks_held_by_owner ON tasks (owner)
  WHERE state IN ('ASSIGNED', 'RUNNING');

CREATE INDEX tasks_finished_by_updated_ms ON tasks (updated_ms)
  WHERE state IN ('COMPLETED', 'FAILED', 'CANCELLED');

CREATE TABLE idempotency_keys (
  key        text   PRIMARY KEY,
  task_id    text   NOT NULL,
  expires_ms bigint NOT NULL
);

CREATE INDEX idempotency_keys_by_expires_ms ON idempotency_keys (expires_ms);

CREATE TABLE dispatchers (
  owner            text   PRIMARY KEY,
  dispatcher_id    text   NOT NULL,
  zone             text   NOT NULL,
  address          text   NOT NULL,
  registered_ms    bigint NOT NULL,
  lease_expires_ms bigint NOT NULL
);

CREATE INDEX dispatchers_by_dispatcher_id ON dispatchers (dispatcher_id);
`;
