/**
 * Every metric Zonal exports, in one table: name, kind, help text and label
 * names. Code that reports a metric takes its name from here, and an adapter
 * (prom-client, OpenTelemetry) can register all of them from this table.
 * A retired name is never reused for a different meaning.
 */
export interface MetricDefinition {
  readonly name: string;
  readonly kind: 'gauge' | 'counter' | 'histogram';
  readonly help: string;
  readonly labelNames: readonly string[];
}

export const METRICS = {
  clientCircuitState: {
    name: 'zonal_client_circuit_state',
    kind: 'gauge',
    help: 'State of the SDK circuit breaker to a dispatcher target: 0 closed, 1 half-open, 2 open.',
    labelNames: ['target'],
  },
  sessions: { name: 'zonal_sessions', kind: 'gauge', help: 'Open worker sessions (streams).', labelNames: [] },
  sessionsClosed: {
    name: 'zonal_sessions_closed_total',
    kind: 'counter',
    help: 'Worker sessions ended, by cause: IDLE (dead), STALLED (stopped reading), STREAM_ENDED, DRAINED, DRAIN_EXPIRED, PROTOCOL_VIOLATION, SHUTDOWN.',
    labelNames: ['cause'],
  },
  heartbeatsSent: { name: 'zonal_heartbeats_sent_total', kind: 'counter', help: 'Explicit heartbeats (Ping) sent on idle worker streams.', labelNames: [] },
  heartbeatOverBudget: {
    name: 'zonal_heartbeat_over_budget',
    kind: 'gauge',
    help: '1 when the heartbeat budget cannot be met because the load-balancer or dead-peer caps win, else 0.',
    labelNames: [],
  },
  tasksInMemory: { name: 'zonal_tasks_in_memory', kind: 'gauge', help: 'Tasks in the dispatcher\'s memory: those its workers hold, and those with a write not yet durable. The backlog waits in the store.', labelNames: [] },
  heldTasks: { name: 'zonal_held_tasks', kind: 'gauge', help: "Attempts this dispatcher's workers hold (ASSIGNED or RUNNING), including ones taken away and not yet confirmed stopped.", labelNames: [] },
  peerDispatchers: { name: 'zonal_peer_dispatchers', kind: 'gauge', help: 'Other live dispatchers on the same store, as of the last heartbeat.', labelNames: [] },
  tasksSwept: {
    name: 'zonal_tasks_swept_total',
    kind: 'counter',
    help: 'Tasks this dispatcher took over from the store because time passed: held by a dispatcher that stopped heartbeating (re-queued), or past their schedule-to-start deadline (failed).',
    labelNames: [],
  },
  tasksLost: {
    name: 'zonal_tasks_lost_total',
    kind: 'counter',
    help: 'Tasks this dispatcher held that another one changed (cancelled elsewhere, or re-queued after this one missed its heartbeat); the worker was told to abort.',
    labelNames: [],
  },
  storeCommits: { name: 'zonal_store_commits_total', kind: 'counter', help: 'Group commits to the task store.', labelNames: [] },
  storeRecords: { name: 'zonal_store_records_committed_total', kind: 'counter', help: 'Task records written by group commits.', labelNames: [] },
  xdsNacks: { name: 'zonal_xds_nacks_total', kind: 'counter', help: 'xDS responses NACKed by clients of the embedded control plane.', labelNames: [] },
  dependencyCircuitState: {
    name: 'zonal_dependency_circuit_state',
    kind: 'gauge',
    help: "State of the dispatcher's circuit breaker to an external dependency (control-plane, store): 0 closed, 1 half-open, 2 open.",
    labelNames: ['dependency'],
  },
  configVersion: { name: 'zonal_config_version', kind: 'gauge', help: 'Version of the runtime config document in force (0: startup options only).', labelNames: [] },
  configUpdates: {
    name: 'zonal_config_updates_total',
    kind: 'counter',
    help: 'Runtime config documents delivered, by result: applied, stale (not newer), invalid (schema), bad_signature, empty (deleted; ignored), duplicate (the one in force again).',
    labelNames: ['result'],
  },
  configPublishToApply: {
    name: 'zonal_config_publish_to_apply_seconds',
    kind: 'histogram',
    help: "Time from a runtime config document's publishedAt to its being in force here (documents without publishedAt are not counted).",
    labelNames: [],
  },
  tasksSubmitted: { name: 'zonal_tasks_submitted_total', kind: 'counter', help: 'Tasks made durable by a submit here, by queue and the producer\'s zone.', labelNames: ['queue', 'zone'] },
  tasksCompleted: { name: 'zonal_tasks_completed_total', kind: 'counter', help: 'Tasks that completed on this dispatcher\'s workers, by queue and the worker\'s zone.', labelNames: ['queue', 'zone'] },
  tasksFailed: { name: 'zonal_tasks_failed_total', kind: 'counter', help: 'Tasks that failed for good here (attempts exhausted, non-retryable, schedule-to-start), by queue and the zone of the worker of their last attempt ("" if none ran).', labelNames: ['queue', 'zone'] },
  tasksRetried: { name: 'zonal_tasks_retried_total', kind: 'counter', help: 'Attempts that ended and left the task to run again, by queue and the worker\'s zone.', labelNames: ['queue', 'zone'] },
  tasksCancelled: { name: 'zonal_tasks_cancelled_total', kind: 'counter', help: 'Tasks cancelled here, by queue and the zone of the worker of their last attempt ("" if none ran).', labelNames: ['queue', 'zone'] },
  queueReady: {
    name: 'zonal_queue_ready_tasks',
    kind: 'gauge',
    help: 'Tasks ready to run and waiting in the store (all dispatchers on it), by queue and zone (the preferred zone, else the zone that accepted it). Read from the store at most every 5 s. Scale workers on it.',
    labelNames: ['queue', 'zone'],
  },
  dispatchLatency: {
    name: 'zonal_task_dispatch_seconds',
    kind: 'histogram',
    help: "Submit to a worker holding the task (its first update on attempt 1: includes the dispatcher-worker round trip), by the producer's, the dispatcher's and the worker's zone.",
    labelNames: ['producer_zone', 'dispatcher_zone', 'worker_zone'],
  },
  completionLatency: {
    name: 'zonal_task_completion_seconds',
    kind: 'histogram',
    help: "Submit to COMPLETED, by the producer's, the dispatcher's and the worker's zone.",
    labelNames: ['producer_zone', 'dispatcher_zone', 'worker_zone'],
  },
  streamRtt: {
    name: 'zonal_stream_rtt_seconds',
    kind: 'histogram',
    help: "Heartbeat round trip (Ping to Pong) on worker streams, by the dispatcher's and the worker's zone.",
    labelNames: ['dispatcher_zone', 'worker_zone'],
  },
  keepaliveInterval: {
    name: 'zonal_keepalive_interval_seconds',
    kind: 'gauge',
    help: "The heartbeat interval in force on this dispatcher's worker streams (mean over the streams), by the worker's zone.",
    labelNames: ['worker_zone'],
  },
  streamLifetime: {
    name: 'zonal_stream_lifetime_seconds',
    kind: 'histogram',
    help: 'How long worker streams lived, by the worker\'s zone and why they ended (as zonal_sessions_closed_total).',
    labelNames: ['worker_zone', 'cause'],
  },
  updatesRefused: {
    name: 'zonal_updates_refused_total',
    kind: 'counter',
    help: 'Worker updates answered REJECTED, by reason: STALE_VERSION, SEQUENCE_GAP and SEQUENCE_REGRESSION (out of order), FENCED, NOT_HELD, TERMINAL, INVALID_UPDATE, INVALID_TRANSITION.',
    labelNames: ['reason'],
  },
  xdsPushes: { name: 'zonal_xds_pushes_total', kind: 'counter', help: 'xDS responses the embedded control plane pushed to clients.', labelNames: [] },
  xdsAcks: { name: 'zonal_xds_acks_total', kind: 'counter', help: 'xDS responses ACKed by clients of the embedded control plane.', labelNames: [] },
  sloBreach: {
    name: 'zonal_slo_breach',
    kind: 'gauge',
    help: "1 while a zone pair's dispatch latency breaks its objective (the built-in SLO check, from_zone = producer zone, to_zone = worker zone), else 0.",
    labelNames: ['from_zone', 'to_zone', 'quantile'],
  },
  sloP95Threshold: {
    name: 'zonal_slo_p95_threshold_seconds',
    kind: 'gauge',
    help: 'The p95 latency objective in force per zone pair (from_zone -> to_zone), for every pair listed or seen; "*" is the default.',
    labelNames: ['from_zone', 'to_zone'],
  },
  sloWebhookFailures: { name: 'zonal_slo_webhook_failures_total', kind: 'counter', help: 'SLO breach or recovery notices the webhook did not take after every retry (or skipped while its breaker was open).', labelNames: [] },
  refusals: {
    name: 'zonal_refusals_total',
    kind: 'counter',
    help: 'Calls (or tasks of a batch) the access policy refused, by reason (UNAUTHENTICATED, PERMISSION_DENIED, RATE_LIMITED, QUEUE_FULL, TOO_MANY_STREAMS) and method.',
    labelNames: ['reason', 'method'],
  },
  observerErrors: { name: 'zonal_observer_errors_total', kind: 'counter', help: 'Errors thrown by a telemetry observer (metrics, traces, heatmap); the dispatcher logs and goes on.', labelNames: [] },
  sloP99Threshold: {
    name: 'zonal_slo_p99_threshold_seconds',
    kind: 'gauge',
    help: 'The p99 latency objective in force per zone pair (from_zone -> to_zone), for every pair listed or seen; "*" is the default for pairs not listed.',
    labelNames: ['from_zone', 'to_zone'],
  },
} as const satisfies Record<string, MetricDefinition>;

/** The value a circuit-state gauge reports for each state. */
export const CIRCUIT_STATE_VALUE = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 } as const;
