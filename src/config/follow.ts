import type { ProducerClient } from '../client/producer-client';
import { setLogLevel } from '../log';
import type { RuntimeConfig } from './runtime-config';

/**
 * Keeps an SDK producer on the runtime config: its call policy (per-attempt
 * deadline, attempts, backoff), its breaker thresholds and the log level
 * follow every applied document, with no reconnect. Returns the function
 * that stops following.
 */
export function followRuntimeConfig(config: RuntimeConfig, producer: ProducerClient): () => void {
  const apply = (): void => {
    const settings = config.current;
    producer.setPolicy({ call: settings.call, breaker: settings.breaker });
    setLogLevel(settings.logLevel);
  };
  if (config.current.version > 0) apply();
  return config.onChange(apply);
}
