/**
 * The latency rows dispatchers share for the heatmap page (migration 2).
 *
 * WRITE_LATENCY_SLOTS: replaces one dispatcher's rows of the given slots.
 *   Inputs: 1. dispatcher id, 2. series[], 3. from zones[], 4. to zones[],
 *   5. slot starts[] (ms), 6. bucket counts as JSON arrays[], 7. sums (ms)[].
 *   Output: none.
 * READ_LATENCY_SLOTS: every other dispatcher's rows of slots from $1 on.
 *   Inputs: 1. since (ms), 2. this dispatcher's id (left out).
 *   Output: rows { dispatcher_id, series, from_zone, to_zone, slot_ms, buckets, sum_ms }.
 * PURGE_LATENCY_SLOTS: deletes rows of slots before $1. Output: none.
 */
export const WRITE_LATENCY_SLOTS = `
INSERT INTO latency_slots (dispatcher_id, series, from_zone, to_zone, slot_ms, buckets, sum_ms)
SELECT $1, s, f, t, m, ARRAY(SELECT jsonb_array_elements_text(b::jsonb)::bigint), sm
FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::float8[]) AS u(s, f, t, m, b, sm)
ON CONFLICT (slot_ms, dispatcher_id, series, from_zone, to_zone) DO UPDATE SET buckets = EXCLUDED.buckets, sum_ms = EXCLUDED.sum_ms`;

export const READ_LATENCY_SLOTS = `
SELECT dispatcher_id, series, from_zone, to_zone, slot_ms, buckets, sum_ms
FROM latency_slots WHERE slot_ms >= $1 AND dispatcher_id <> $2
ORDER BY dispatcher_id LIMIT 100000`;

export const PURGE_LATENCY_SLOTS = `DELETE FROM latency_slots WHERE slot_ms < $1`;
