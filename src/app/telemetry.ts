import type { Route } from '../admin/admin-server';
import { heatmapResponse, HeatmapQueryError, parseHeatmapQuery } from '../admin/heatmap-api';
import type { EngineObserver } from '../core/task-events';
import type { RuntimeConfig } from '../config/runtime-config';
import type { TaskStore } from '../store/task-store';
import { HeatmapObserver } from '../telemetry/heatmap-observer';
import { LatencyMatrix } from '../telemetry/latency-matrix';
import { LatencySharing } from '../telemetry/latency-sharing';
import { startTracingFromEnv, tracingRequested, type TracingHandle } from '../telemetry/otel-sdk';
import { SloMonitor } from '../telemetry/slo-monitor';
import { TracingObserver } from '../telemetry/tracing-observer';
import type { ServerOptions } from './server-options';

/**
 * The operators' view of one dispatcher, built in one place: the latency
 * matrix (fed by the engine's events, shared through PostgreSQL), the SLO
 * monitor over it, tracing when asked, and the /api/heatmap route. The
 * Prometheus registry is built beside it in start-server.ts.
 */
export interface OperatorsView {
  readonly matrix: LatencyMatrix;
  readonly slo: SloMonitor;
  /** Observers for the Dispatcher (heatmap, traces). */
  readonly observers: EngineObserver[];
  readonly routes: Record<string, Route>;
  start(): void;
  stop(): Promise<void>;
}

export function buildOperatorsView(options: ServerOptions, store: TaskStore, runtimeConfig: RuntimeConfig): OperatorsView {
  const nowMs = (): number => Date.now();
  const matrix = new LatencyMatrix();
  const self = { id: options.dispatcherId, zone: options.zone };
  // Shared rows carry "<zone>/<id>", as served_by does, so a page can name every dispatcher's zone.
  const selfKey = `${options.zone}/${options.dispatcherId}`;
  const sharing = store.sharedLatency !== undefined ? new LatencySharing(store.sharedLatency, matrix, selfKey, nowMs, options.heatmapShareIntervalMs) : undefined;
  const slo = new SloMonitor({
    matrix,
    // The first live dispatcher by name sends the webhook notices; the others only log and export.
    notifies: () => sharing === undefined || [...sharing.peers].every(([key, seenMs]) => seenMs < nowMs() - 60_000 || key > selfKey),
    thresholds: () => runtimeConfig.current.slo,
    nowMs,
    dispatcher: self,
    intervalMs: options.sloIntervalMs,
    windowMs: options.sloWindowMs,
    minSamples: options.sloMinSamples,
    ...(options.sloWebhookUrl !== '' ? { webhookUrl: options.sloWebhookUrl } : {}),
  });
  const observers: EngineObserver[] = [new HeatmapObserver(matrix)];
  const requested = tracingRequested();
  const tracingOn = options.tracing === 'on' || (options.tracing === 'auto' && requested);
  let tracing: TracingHandle | undefined;
  // 'on' makes spans whatever OTEL_* says; they are exported by the SDK when OTEL_* asks, or by a provider the embedding process registered.
  if (tracingOn && requested) tracing = startTracingFromEnv('zonal-dispatcher');
  if (tracingOn) observers.push(new TracingObserver());

  const dispatchers = (): { id: string; zone: string; self: boolean }[] => [
    { ...self, self: true },
    ...matrix.remoteDispatchers().map((key) => {
      const i = key.indexOf('/');
      return { id: key.slice(i + 1), zone: key.slice(0, i), self: false };
    }),
  ];
  const routes: Record<string, Route> = {
    '/api/heatmap': async (url) => {
      let query;
      try {
        query = parseHeatmapQuery(url.searchParams);
      } catch (err) {
        if (err instanceof HeatmapQueryError) return { status: 400, body: `bad query: ${err.message}\n`, contentType: 'text/plain' };
        throw err;
      }
      return { status: 200, body: heatmapResponse({ matrix, slo: () => ({ thresholds: runtimeConfig.current.slo, state: slo.view().state }), dispatchers, nowMs }, query) };
    },
  };

  return {
    matrix,
    slo,
    observers,
    routes,
    start() {
      slo.start();
      sharing?.start();
    },
    async stop() {
      slo.stop();
      await sharing?.stop();
      await tracing?.shutdown();
    },
  };
}
