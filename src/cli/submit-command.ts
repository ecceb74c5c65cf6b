import { startTracingFromEnv } from '../telemetry/otel-sdk';
import { ProducerClient } from '../client/producer-client';
import { TaskFailedError } from '../errors';
import { CLIENT_SECURITY_FLAGS, clientSecurity } from './client-security-flags';
import { num, str, UsageError, type FlagSpec, type FlagValues } from './flags';

export const SUBMIT_SUMMARY = 'Submits one or many tasks and prints one JSON line per task; --wait also waits for each result.';

export const SUBMIT_FLAGS: FlagSpec[] = [
  { name: 'target', env: 'ZONAL_TARGET', type: 'string', default: '127.0.0.1:50051', description: 'Dispatcher: xds:///zonal (needs GRPC_XDS_BOOTSTRAP), dns:///host:port or host:port.' },
  { name: 'payload', env: 'ZONAL_SUBMIT_PAYLOAD', type: 'string', default: '', description: 'Payload text; {i} is replaced by the task index.' },
  { name: 'count', env: 'ZONAL_SUBMIT_COUNT', type: 'number', default: 1, description: 'How many tasks to submit.' },
  { name: 'queue', env: 'ZONAL_SUBMIT_QUEUE', type: 'string', default: 'default', description: 'Queue name.' },
  { name: 'priority', env: 'ZONAL_SUBMIT_PRIORITY', type: 'number', default: 0, description: 'Priority, -1000..1000; higher runs first.' },
  { name: 'idempotency-key', env: 'ZONAL_SUBMIT_IDEMPOTENCY_KEY', type: 'string', description: 'Idempotency key (with --count > 1, "-{i}" is appended).' },
  { name: 'max-attempts', env: 'ZONAL_SUBMIT_MAX_ATTEMPTS', type: 'number', description: 'Attempts before the task fails (default: the dispatcher default).' },
  { name: 'zone', env: 'ZONAL_ZONE', type: 'string', default: '', description: "The producer's zone, recorded on each task (default: the xDS bootstrap's locality for an xds: target)." },
  { name: 'delay-ms', env: 'ZONAL_SUBMIT_DELAY_MS', type: 'number', default: 0, description: 'Do not start before now + delay.' },
  { name: 'wait', env: 'ZONAL_SUBMIT_WAIT', type: 'boolean', default: false, description: 'Wait for each task to finish and print its outcome.' },
  { name: 'timeout-ms', env: 'ZONAL_SUBMIT_TIMEOUT_MS', type: 'number', default: 60_000, description: 'With --wait: give up waiting after this long.' },
  ...CLIENT_SECURITY_FLAGS,
];

export async function submitCommand(values: FlagValues): Promise<void> {
  const count = num(values, 'count') ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 1_000_000) throw new UsageError('--count must be 1..1000000');
  const zone = str(values, 'zone');
  // With OTEL_* set, each submit's zonal.submit span is exported and the task carries its trace context.
  const tracing = startTracingFromEnv('zonal-submit');
  const { security, close: closeSecurity } = clientSecurity(values);
  const producer = new ProducerClient({ target: str(values, 'target'), ...(zone !== '' ? { zone } : {}), ...security });
  const key = str(values, 'idempotency-key');
  const delayMs = num(values, 'delay-ms') ?? 0;
  const maxAttempts = num(values, 'max-attempts');
  let failures = 0;
  try {
    try {
      await producer.ready({ deadlineMs: 10_000 });
    } catch (err) {
      // A refused TLS handshake looks like a dispatcher that never answers: say what to check.
      if (security.tls === undefined) throw err;
      throw new UsageError(`cannot reach ${str(values, 'target')} over TLS (${err instanceof Error ? err.message : String(err)}): check --tls-ca against the dispatcher's certificate, --tls-server-name, and whether it asks for a client certificate (--tls-cert, --tls-key)`);
    }
    const jobs = Array.from({ length: count }, async (_, i) => {
      const payload = str(values, 'payload').replaceAll('{i}', String(i));
      const { taskId, deduplicated, servedBy } = await producer.submit({
        payload,
        queue: str(values, 'queue'),
        priority: num(values, 'priority') ?? 0,
        ...(key !== '' ? { idempotencyKey: count > 1 ? `${key}-${i}` : key } : {}),
        ...(maxAttempts !== undefined ? { maxAttempts } : {}),
        ...(delayMs > 0 ? { notBefore: Date.now() + delayMs } : {}),
      });
      if (values['wait'] !== true) {
        process.stdout.write(JSON.stringify({ taskId, deduplicated, servedBy }) + '\n');
        return;
      }
      try {
        const result = await producer.result(taskId, { timeoutMs: num(values, 'timeout-ms') ?? 60_000 });
        process.stdout.write(JSON.stringify({ taskId, deduplicated, servedBy, state: 'COMPLETED', result: result.toString('utf8') }) + '\n');
      } catch (err) {
        failures += 1;
        if (err instanceof TaskFailedError) {
          process.stdout.write(JSON.stringify({ taskId, deduplicated, state: err.state, error: err.info ?? null }) + '\n');
        } else throw err;
      }
    });
    await Promise.all(jobs);
  } finally {
    producer.close();
    closeSecurity();
    await tracing?.shutdown();
  }
  if (failures > 0) process.exitCode = 3;
}
