/**
 * Migration 2: the store owns who holds a task. Shipped; never edit.
 *
 * tasks gains
 *   producer_zone, accepted_zone   where the task came from (definition);
 *   owner, dispatcher_zone,        the dispatcher process holding the current
 *   lease_expires_ms               attempt and until when its claim holds;
 *   worker_zone                    the zone of the attempt's worker;
 *   ready_at_ms                    when a PENDING task became (or becomes) ready;
 *   start_deadline_ms              its schedule-to-start deadline (0: none).
 * dispatchers    one row per dispatcher process; a task whose owner's row
 *                expired (or is gone) is reaped by a live dispatcher.
 *
 * Tasks that were ASSIGNED or RUNNING before this migration have owner '',
 * which no dispatcher is: the first sweep re-queues them, as a restart did.
 *
 * Invariants: tasks_ready, tasks_pending_by_ready_at and tasks_start_deadline
 * index exactly the PENDING tasks (the claim and sweep statements repeat the
 * WHERE term word for word, so the planner can use them);
 * tasks_held_by_owner indexes the tasks a dispatcher holds.
 */
export const MIGRATION_002_OWNERSHIP = `
ALTER TABLE tasks ADD COLUMN producer_zone     TEXT    NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN accepted_zone     TEXT    NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN owner             TEXT    NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN dispatcher_zone   TEXT    NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN lease_expires_ms  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN worker_zone       TEXT    NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN ready_at_ms       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN start_deadline_ms INTEGER NOT NULL DEFAULT 0;

UPDATE tasks
SET ready_at_ms = max(not_before_ms, updated_ms),
    start_deadline_ms = CASE WHEN schedule_to_start_timeout_ms > 0 THEN max(not_before_ms, updated_ms) + schedule_to_start_timeout_ms ELSE 0 END
WHERE state = 'PENDING';

DROP INDEX tasks_unfinished_by_seq;

CREATE INDEX tasks_ready ON tasks (queue, priority DESC, seq)
  WHERE state = 'PENDING';

CREATE INDEX tasks_pending_by_ready_at ON tasks (queue, ready_at_ms)
  WHERE state = 'PENDING';

CREATE INDEX tasks_start_deadline ON tasks (start_deadline_ms)
  WHERE state = 'PENDING' AND start_deadline_ms > 0;

CREATE INDEX tasks_held_by_owner ON tasks (owner)
  WHERE state IN ('ASSIGNED', 'RUNNING');

CREATE TABLE dispatchers (
  owner            TEXT    PRIMARY KEY,
  dispatcher_id    TEXT    NOT NULL,
  zone             TEXT    NOT NULL,
  address          TEXT    NOT NULL,
  registered_ms    INTEGER NOT NULL,
  lease_expires_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`;
