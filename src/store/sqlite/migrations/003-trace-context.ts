/**
 * Migration 3: the producer's W3C trace context travels with the task.
 * Shipped; never edit.
 *
 * tasks gains traceparent and tracestate (definition, written once at
 * insert; '' when the producer did not trace).
 */
export const MIGRATION_003_TRACE_CONTEXT = `
ALTER TABLE tasks ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN tracestate  TEXT NOT NULL DEFAULT '';
`;
