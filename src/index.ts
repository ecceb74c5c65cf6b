/**
 * Zonal: a zone-aware gRPC task dispatcher.
 *
 * ```ts
 * import { startServer, ProducerClient, Worker } from 'zonal';
 *
 * const server = await startServer({ grpcAddress: '127.0.0.1:0', adminAddress: '', dataDir: './data' });
 * const worker = new Worker({ target: server.grpcAddress, slots: 4, handler: async (task) => `done ${task.taskId}` });
 * await worker.start();
 * const producer = new ProducerClient({ target: server.grpcAddress });
 * const { taskId } = await producer.submit({ payload: 'hello' });
 * console.log((await producer.result(taskId)).toString());
 * producer.close();
 * await worker.close();
 * await server.stop();
 * ```
 */
export { ProducerClient, type ProducerClientOptions, type SubmitOptions } from './client/producer-client';
export { Worker, NonRetryableError, type WorkerOptions, type WorkerTask, type TaskContext, type TaskHandler, type WorkerLifecycle } from './client/worker';
export type { TaskInfo } from './client/task-info';
export { DEFAULT_CALL_POLICY, compileCallPolicy, type CallPolicy, type CallPolicyInput } from './client/call-policy';
export { DEFAULT_RETRY_BUDGET, RetryBudget, type RetryBudgetOptions } from './client/retry-budget';
export { Breaker, DEFAULT_BREAKER_OPTIONS, compileBreakerOptions, type BreakerOptions, type CircuitState } from './resilience/breaker';
export { isRetryable, indicatesUnhealthy } from './protocol/grpc-errors';
export { METRICS, CIRCUIT_STATE_VALUE, type MetricDefinition } from './telemetry/metric-names';
export type { ClientMetrics, Gauge, MetricLabels } from './telemetry/client-metrics';
export { startServer, type RunningServer } from './app/start-server';
export { compileServerOptions, type ServerOptions, type ServerOptionsInput } from './app/server-options';
export { compileCoreOptions, CORE_DEFAULTS, type CoreOptions } from './core/options';
export type { TaskState } from './core/task-state';
export { ZonalError, TaskFailedError, InvalidArgumentError, REASONS, type Reason, type ErrorInfo } from './errors';
export type { TaskStore } from './store/task-store';
export { SqliteTaskStore } from './store/sqlite/sqlite-task-store';
export { RuntimeConfig, type RuntimeConfigOptions, type RuntimeConfigStatus } from './config/runtime-config';
export { followRuntimeConfig } from './config/follow';
export { openConfigSource } from './config/open-source';
export { FileSource } from './config/file-source';
export { NacosSource } from './config/nacos-source';
export { parseNacosUrl, type NacosTarget } from './config/nacos-url';
export { PublicKeyRing, signDocument } from './config/signature';
export { RUNTIME_DOCUMENT_SCHEMA, DEFAULT_BASELINE, compileRuntimeDocument, type RuntimeDocument, type RuntimeSettings, type RuntimeBaseline } from './config/runtime-schema';
export type { OfferResult, Decision } from './config/config-gate';
