import { STATE_COLUMNS, STATE_COUNT, stateUnnest } from './task-columns';

const ID = `$${STATE_COUNT + 1}`;
const EXPECT = `$${STATE_COUNT + 2}`;
const BACK = `$${STATE_COUNT + 3}`;

/**
 * Writes: sets the state columns of many tasks in one statement, each only
 * while its row holds the version the engine read, or already holds exactly
 * this write (same version, state, attempt and owner: a retried commit). A
 * write with `back` true that makes the task PENDING takes a new FIFO place.
 *
 * Inputs (positional): 1..N one array per state column (task-columns.ts
 * order), N+1 ids, N+2 expected versions, N+3 back (bool[]).
 * Output: rows { id } of the tasks written; an id missing is a conflict.
 */
export const WRITE_STATES = `
WITH w AS (
  SELECT * FROM unnest(${stateUnnest(1)}, ${ID}::text[], ${EXPECT}::int8[], ${BACK}::bool[]) AS w(${STATE_COLUMNS.join(', ')}, id, expect_version, back)
)
UPDATE tasks t SET ${STATE_COLUMNS.map((c) => `${c} = w.${c}`).join(', ')},
  seq = CASE WHEN w.back AND w.state = 'PENDING' THEN nextval('task_seq') ELSE t.seq END
FROM w
WHERE t.id = w.id
  AND (t.version = w.expect_version OR (t.version = w.version AND t.state = w.state AND t.attempt = w.attempt AND t.owner = w.owner))
RETURNING t.id`;
