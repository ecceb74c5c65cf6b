import type { ProducerClient } from '../client/producer-client';
import { setLogLevel } from '../log';
import type { RuntimeConfig } from './runtime-config';
import type { RuntimeSettings } from './runtime-schema';

/**
 * Keeps an SDK producer on the runtime config: its call policy (per-attempt
 * deadline, attempts, backoff), its breaker thresholds and the log level
 * follow every applied document, with no reconnect. Returns the function
 * that stops following.
 */
export function followRuntimeConfig(config: RuntimeConfig, producer: ProducerClient): () => void {
  const apply = (settings: RuntimeSettings, previous: RuntimeSettings | undefined): void => {
    producer.setPolicy({ call: settings.call, breaker: settings.breaker });
    if (settings.logLevel !== previous?.logLevel) setLogLevel(settings.logLevel);
  };
  if (config.current.version > 0) apply(config.current, undefined);
  return config.onChange(apply);
}
