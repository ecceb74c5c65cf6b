/**
 * Zonal's SDK: submit tasks and run them. This entry loads only the client
 * (gRPC, the proto, the circuit breaker): no store, no SQLite, no control
 * plane, no server metrics. The dispatcher is `zonal/server`; runtime
 * configuration (for SDK clients that follow it too) is `zonal/config`.
 *
 * ```ts
 * import { ProducerClient, Worker } from 'zonal';
 *
 * const worker = new Worker({ target: '127.0.0.1:50051', slots: 4, handler: async (task) => `done ${task.taskId}` });
 * await worker.start();
 * const producer = new ProducerClient({ target: '127.0.0.1:50051', zone: 'eu-west-1a' });
 * const { taskId } = await producer.submit({ payload: 'hello' });
 * console.log((await producer.result(taskId)).toString());
 * producer.close();
 * await worker.close();
 * ```
 */
export { ProducerClient, type ProducerClientOptions, type SubmitOptions } from './client/producer-client';
export type { ClientSecurityOptions } from './client/channel';
export { Worker, NonRetryableError, type WorkerOptions, type WorkerTask, type TaskContext, type TaskHandler, type WorkerLifecycle } from './client/worker';
export type { TaskInfo } from './client/task-info';
export type { SettledUpdate } from './client/worker-connection';
export { DEFAULT_CALL_POLICY, compileCallPolicy, type CallPolicy, type CallPolicyInput } from './client/call-policy';
export { DEFAULT_RETRY_BUDGET, RetryBudget, type RetryBudgetOptions } from './client/retry-budget';
export { Breaker, DEFAULT_BREAKER_OPTIONS, compileBreakerOptions, type BreakerOptions, type CircuitState } from './resilience/breaker';
export { isRetryable, indicatesUnhealthy } from './protocol/grpc-errors';
export { METRICS, CIRCUIT_STATE_VALUE, type MetricDefinition } from './telemetry/metric-names';
export type { ClientMetrics, Gauge, MetricLabels } from './telemetry/client-metrics';
export type { TaskState } from './core/task-state';
export { ZonalError, TaskFailedError, InvalidArgumentError, REASONS, type Reason, type ErrorInfo } from './errors';
