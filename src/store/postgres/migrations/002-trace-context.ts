/**
 * Migration 2: the producer's W3C trace context travels with the task, and
 * dispatchers share their latency samples for the heatmap page. Shipped;
 * never edit.
 *
 * tasks gains traceparent and tracestate (definition, written once at
 * insert; '' when the producer did not trace).
 *
 * latency_slots holds each dispatcher's latency histograms, one row per
 * (dispatcher, series, from zone, to zone, slot start): `buckets` are the
 * counts per bucket of src/telemetry/latency-buckets.ts, `sum_ms` their sum.
 * A dispatcher rewrites its own rows of the current slot; any dispatcher's
 * page reads everyone's. Rows older than the longest window are purged.
 */
export const PG_MIGRATION_002_TRACE_CONTEXT = `
ALTER TABLE tasks ADD COLUMN traceparent text NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN tracestate  text NOT NULL DEFAULT '';

CREATE TABLE latency_slots (
  dispatcher_id text     NOT NULL,
  series        text     NOT NULL,
  from_zone     text     NOT NULL,
  to_zone       text     NOT NULL,
  slot_ms       bigint   NOT NULL,
  buckets       bigint[] NOT NULL,
  sum_ms        double precision NOT NULL,
  PRIMARY KEY (slot_ms, dispatcher_id, series, from_zone, to_zone)
);
`;
