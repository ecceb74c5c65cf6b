import * as path from 'node:path';

/**
 * An application that traces: with OTEL_* set (e2e.ts --tracing), a bench
 * producer or worker starts the OpenTelemetry SDK of the build under test
 * (its telemetry/otel-sdk.js), as a user's application would register its
 * own. Builds without it (older ones) run untraced.
 */
export function startTracing(sdk: string, serviceName: string): { shutdown(): Promise<void> } | undefined {
  if (process.env['OTEL_TRACES_EXPORTER'] === undefined) return undefined;
  try {
    const otel = require(path.join(path.dirname(sdk), 'telemetry', 'otel-sdk.js')) as { startTracingFromEnv(name: string): { shutdown(): Promise<void> } | undefined };
    return otel.startTracingFromEnv(serviceName);
  } catch {
    return undefined;
  }
}
