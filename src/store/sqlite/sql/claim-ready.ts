import { TAKES_AT_ONCE, TASK_COLUMNS } from './task-columns';

/**
 * The ready tasks a claim takes, in claim order (core/claim-rules.ts): the
 * PENDING tasks of @queue ready by @now that sessions of @zone on a
 * dispatcher of @dispatcher_zone take at once (CLAIM_AT_ONCE), or the others
 * once ready for the spillover delay (CLAIM_SPILLED: @spilled_by = now -
 * delay). Higher priority first, then FIFO. `state = 'PENDING'` repeats the
 * partial index tasks_ready (migrations/002-ownership.ts) word for word, and
 * INDEXED BY holds the planner to it: the scan walks it in claim order and
 * needs no sort, however many tasks wait (without it, SQLite may pick
 * tasks_pending_by_ready_at and sort the whole backlog; a test checks the plan).
 *
 * Inputs (named): @queue, @now or @spilled_by, @zone, @dispatcher_zone, @limit.
 * Output: TaskRows.
 */
export const CLAIM_AT_ONCE = `
SELECT ${TASK_COLUMNS}
FROM tasks AS t INDEXED BY tasks_ready
WHERE t.state = 'PENDING' AND t.queue = @queue AND t.ready_at_ms <= @now AND ${TAKES_AT_ONCE}
ORDER BY t.priority DESC, t.seq
LIMIT @limit`;

export const CLAIM_SPILLED = `
SELECT ${TASK_COLUMNS}
FROM tasks AS t INDEXED BY tasks_ready
WHERE t.state = 'PENDING' AND t.queue = @queue AND t.ready_at_ms <= @spilled_by AND NOT ${TAKES_AT_ONCE}
ORDER BY t.priority DESC, t.seq
LIMIT @limit`;
