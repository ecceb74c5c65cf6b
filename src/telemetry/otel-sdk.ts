import { createLogger } from '../log';

const log = createLogger('tracing');

/**
 * Whether the standard OpenTelemetry environment asks for traces: an
 * exporter (`OTEL_TRACES_EXPORTER`, other than `none`) or an OTLP endpoint
 * (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
 * and `OTEL_SDK_DISABLED` is not `true`. Otherwise tracing stays off: no
 * SDK is loaded and the dispatcher makes no spans.
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env['OTEL_SDK_DISABLED'] ?? '').toLowerCase() === 'true') return false;
  const exporter = (env['OTEL_TRACES_EXPORTER'] ?? '').trim().toLowerCase();
  if (exporter === 'none') return false;
  return exporter !== '' || (env['OTEL_EXPORTER_OTLP_ENDPOINT'] ?? '') !== '' || (env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? '') !== '';
}

export interface TracingHandle {
  shutdown(): Promise<void>;
}

/**
 * Starts @opentelemetry/sdk-node (an optional peer dependency, loaded only
 * here) when the environment asks for traces; its exporters, sampler and
 * resource come from the standard OTEL_* variables. Returns undefined when
 * tracing is off, or when the package is missing (with a warning that says
 * how to install it). No auto-instrumentation: Zonal makes its own spans.
 */
export function startTracingFromEnv(serviceName: string, env: NodeJS.ProcessEnv = process.env): TracingHandle | undefined {
  if (!tracingRequested(env)) return undefined;
  let sdkNode: typeof import('@opentelemetry/sdk-node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    sdkNode = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  } catch (err) {
    log.warn('OTEL_* asks for traces but @opentelemetry/sdk-node is not installed: tracing stays off (npm install @opentelemetry/sdk-node@~0.223)', { error: err });
    return undefined;
  }
  const sdk = new sdkNode.NodeSDK({ serviceName: env['OTEL_SERVICE_NAME'] ?? serviceName, instrumentations: [] });
  sdk.start();
  log.info('tracing on', { exporter: env['OTEL_TRACES_EXPORTER'] ?? 'otlp', endpoint: env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? env['OTEL_EXPORTER_OTLP_ENDPOINT'] ?? '' });
  return { shutdown: () => sdk.shutdown() };
}
