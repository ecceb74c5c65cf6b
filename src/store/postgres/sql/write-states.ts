import { STATE_COLUMNS, STATE_COUNT, stateUnnest } from './task-columns';

const ID = `$${STATE_COUNT + 1}`;
const EXPECT = `$${STATE_COUNT + 2}`;
const BACK = `$${STATE_COUNT + 3}`;

/**
 * Writes: sets the state columns of many tasks in one statement, each only
 * while its row holds the version the engine read. A row that already holds
 * exactly this write (same version, state, attempt, owner, error and result:
 * a retried commit; core/commit-batch.ts holdsSameWrite) counts as written
 * and is left as it is. A write with `back` true that makes the task PENDING
 * takes a new FIFO place.
 *
 * Inputs (positional): 1..N one array per state column (task-columns.ts
 * order), N+1 ids, N+2 expected versions, N+3 back (bool[]).
 * Output: rows { id } of the tasks written (or already holding the write); an id missing is a conflict.
 */
export const WRITE_STATES = `
WITH w AS (
  SELECT * FROM unnest(${stateUnnest(1)}, ${ID}::text[], ${EXPECT}::int8[], ${BACK}::bool[]) AS w(${STATE_COLUMNS.join(', ')}, id, expect_version, back)
),
written AS (
  UPDATE tasks t SET ${STATE_COLUMNS.map((c) => `${c} = w.${c}`).join(', ')},
    seq = CASE WHEN w.back AND w.state = 'PENDING' THEN nextval('task_seq') ELSE t.seq END
  FROM w
  WHERE t.id = w.id AND t.version = w.expect_version
  RETURNING t.id
)
SELECT id FROM written
UNION ALL
SELECT t.id FROM tasks t JOIN w ON t.id = w.id
WHERE t.version <> w.expect_version AND t.version = w.version AND t.state = w.state AND t.attempt = w.attempt AND t.owner = w.owner
  AND t.error IS NOT DISTINCT FROM w.error AND t.result IS NOT DISTINCT FROM w.result`;
