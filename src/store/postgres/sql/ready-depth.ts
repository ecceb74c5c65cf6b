/**
 * Ready tasks by queue and zone (the preferred zone, else the zone that
 * accepted it), for the zonal_queue_ready_tasks gauge. Reads the PENDING
 * part of tasks only (tasks_ready's WHERE term).
 *
 * Inputs: 1. now (ms): a task ready at or before it counts.
 * Output: rows { queue, zone, n } (at most 1,000 groups).
 */
export const READY_DEPTH = `
SELECT queue, CASE WHEN preferred_zone <> '' THEN preferred_zone ELSE accepted_zone END AS zone, count(*) AS n
FROM tasks WHERE state = 'PENDING' AND ready_at_ms <= $1
GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 1000`;
