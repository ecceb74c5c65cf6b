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
  sloP99Threshold: {
    name: 'zonal_slo_p99_threshold_seconds',
    kind: 'gauge',
    help: 'The p99 latency objective in force per zone pair (from_zone -> to_zone); "*" is the default for pairs not listed.',
    labelNames: ['from_zone', 'to_zone'],
  },
} as const satisfies Record<string, MetricDefinition>;

/** The value a circuit-state gauge reports for each state. */
export const CIRCUIT_STATE_VALUE = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 } as const;
