import { setLogLevel, type LogLevel } from '../log';
import { startServer } from '../app/start-server';
import type { KeepalivePolicyOptions } from '../core/keepalive-policy';
import type { ServerOptionsInput } from '../app/server-options';
import { num, str, UsageError, type FlagSpec, type FlagValues } from './flags';
import { removePidFile, writePidFile } from './pid-file';

export const SERVE_SUMMARY = 'Runs a dispatcher: tasks in --store (SQLite under --data-dir by default, or PostgreSQL shared by several dispatchers), gRPC on --grpc-address, health on --admin-address.';

export const SERVE_FLAGS: FlagSpec[] = [
  { name: 'grpc-address', env: 'ZONAL_GRPC_ADDRESS', type: 'string', default: '127.0.0.1:50051', description: 'gRPC listen address (host:port; port 0 picks one).' },
  { name: 'admin-address', env: 'ZONAL_ADMIN_ADDRESS', type: 'string', default: '127.0.0.1:9464', description: "Admin HTTP address for /healthz and /readyz; 'off' disables it." },
  { name: 'data-dir', env: 'ZONAL_DATA_DIR', type: 'string', default: './data', description: 'Directory this dispatcher locks: the runtime config snapshot, and the SQLite store unless --store says otherwise. One dispatcher per data dir.' },
  {
    name: 'store',
    env: 'ZONAL_STORE',
    type: 'string',
    default: '',
    description:
      "Where tasks live: sqlite:<dir> (default: sqlite:<data dir>), or postgres://user@host:5432/db?schema=zonal&pool_max=8 for several dispatchers sharing one database (password from PGPASSWORD or the URL). See docs/operations.md.",
  },
  { name: 'task-lease-ms', env: 'ZONAL_TASK_LEASE_MS', type: 'number', default: 10_000, description: "How long this dispatcher's tasks stay its own without its heartbeat; after that any other dispatcher re-queues them." },
  { name: 'sqlite-synchronous', env: 'ZONAL_SQLITE_SYNCHRONOUS', type: 'string', default: 'FULL', description: 'FULL survives power loss; NORMAL only process crashes.' },
  {
    name: 'allow-damaged-store',
    env: 'ZONAL_ALLOW_DAMAGED_STORE',
    type: 'boolean',
    default: false,
    description: 'Start even if the store fails its integrity check: serve what can be read, or move an unreadable file aside and start empty. For recovery only; see docs/operations.md.',
  },
  { name: 'heartbeat-min-interval-ms', env: 'ZONAL_HEARTBEAT_MIN_INTERVAL_MS', type: 'number', default: 500, description: 'Shortest heartbeat interval of an idle worker stream.' },
  { name: 'heartbeat-max-interval-ms', env: 'ZONAL_HEARTBEAT_MAX_INTERVAL_MS', type: 'number', default: 15_000, description: 'Longest heartbeat interval of an idle worker stream.' },
  { name: 'lb-idle-window-ms', env: 'ZONAL_LB_IDLE_WINDOW_MS', type: 'number', default: 60_000, description: 'Shortest idle window of any load balancer or proxy on the path; heartbeats stay under 80 % of it.' },
  { name: 'dead-peer-detect-ms', env: 'ZONAL_DEAD_PEER_DETECT_MS', type: 'number', default: 45_000, description: 'Target time to notice a dead worker; the interval stays under a third of it.' },
  { name: 'heartbeat-budget-per-sec', env: 'ZONAL_HEARTBEAT_BUDGET_PER_SEC', type: 'number', default: 2_000, description: 'Explicit heartbeats per second over all sessions; intervals stretch (inside the caps) to keep to it.' },
  { name: 'base-idle-ms', env: 'ZONAL_BASE_IDLE_MS', type: 'number', default: 5_000, description: 'Floor of the idle timeout (which is max(3 x interval, this)).' },
  { name: 'drain-grace-ms', env: 'ZONAL_DRAIN_GRACE_MS', type: 'number', default: 5_000, description: 'Time in-flight tasks get after Drain, GoAway or SIGTERM.' },
  { name: 'max-payload-bytes', env: 'ZONAL_MAX_PAYLOAD_BYTES', type: 'number', default: 4 * 1024 * 1024, description: 'Largest task payload accepted.' },
  { name: 'default-max-attempts', env: 'ZONAL_DEFAULT_MAX_ATTEMPTS', type: 'number', default: 3, description: 'Attempts for tasks that do not set max_attempts.' },
  { name: 'default-attempt-timeout-ms', env: 'ZONAL_DEFAULT_ATTEMPT_TIMEOUT_MS', type: 'number', default: 300_000, description: 'Attempt timeout for tasks that do not set one.' },
  { name: 'zone', env: 'ZONAL_ZONE', type: 'string', default: '', description: "This dispatcher's zone (xDS locality)." },
  { name: 'region', env: 'ZONAL_REGION', type: 'string', default: '', description: "This dispatcher's region (xDS locality)." },
  { name: 'dispatcher-id', env: 'ZONAL_DISPATCHER_ID', type: 'string', description: 'Stable instance name (default: host-pid).' },
  { name: 'xds-address', env: 'ZONAL_XDS_ADDRESS', type: 'string', default: '127.0.0.1:18000', description: "Embedded xDS control plane listen address; 'off' runs none." },
  { name: 'xds-file', env: 'ZONAL_XDS_FILE', type: 'string', default: '', description: 'JSON file of static endpoints and policy for the embedded control plane (watched).' },
  { name: 'xds-health-window-ms', env: 'ZONAL_XDS_HEALTH_WINDOW_MS', type: 'number', default: 1_000, description: 'The embedded control plane serves a dispatcher silent this long as UNHEALTHY.' },
  { name: 'register-with', env: 'ZONAL_REGISTER_WITH', type: 'string', default: '', description: "Control plane (host:port) to register with; default: the embedded one. 'off' registers nowhere." },
  { name: 'advertise-address', env: 'ZONAL_ADVERTISE_ADDRESS', type: 'string', default: '', description: 'ip:port clients dial (default: the bound gRPC address).' },
  { name: 'drain-propagation-ms', env: 'ZONAL_DRAIN_PROPAGATION_MS', type: 'number', default: 2_000, description: 'On shutdown, longest wait for xDS clients to see DRAINING before GoAway.' },
  { name: 'max-session-age-ms', env: 'ZONAL_MAX_SESSION_AGE_MS', type: 'number', default: 1_800_000, description: 'Worker streams older than this (10 % jitter) are asked to reconnect; 0 disables.' },
  { name: 'log-level', env: 'ZONAL_LOG_LEVEL', type: 'string', default: 'info', description: 'debug, info, warn or error.' },
  {
    name: 'config',
    env: 'ZONAL_CONFIG',
    type: 'string',
    default: '',
    description:
      'Runtime config: a YAML/JSON file (watched) or nacos://host:8848/<dataId>?group=&namespace= (credentials from ZONAL_NACOS_USERNAME/ZONAL_NACOS_PASSWORD). Its keys override the flags above while running; see docs/configuration.md.',
  },
  { name: 'slo-webhook-url', env: 'ZONAL_SLO_WEBHOOK_URL', type: 'string', default: '', description: 'POSTed a JSON notice at each SLO breach and recovery (retried, behind a circuit breaker); see docs/operations.md.' },
  { name: 'slo-interval-ms', env: 'ZONAL_SLO_INTERVAL_MS', type: 'number', default: 10_000, description: 'How often the built-in SLO check runs.' },
  { name: 'slo-window-ms', env: 'ZONAL_SLO_WINDOW_MS', type: 'number', default: 300_000, description: 'The window of dispatch latency each SLO check judges.' },
  { name: 'slo-min-samples', env: 'ZONAL_SLO_MIN_SAMPLES', type: 'number', default: 20, description: 'Fewest samples of a zone pair in the window for the SLO check to judge it.' },
  { name: 'tracing', env: 'ZONAL_TRACING', type: 'string', default: 'auto', description: "Spans of queued, assigned and completed tasks: auto (when OTEL_* asks for traces), on or off." },
  { name: 'tls-cert', env: 'ZONAL_TLS_CERT', type: 'string', default: '', description: 'PEM certificate chain of the gRPC port; with --tls-key it serves TLS (reloaded when the file changes). Needs --access-policy. See docs/security.md.' },
  { name: 'tls-key', env: 'ZONAL_TLS_KEY', type: 'string', default: '', description: 'PEM private key of --tls-cert.' },
  { name: 'tls-client-ca', env: 'ZONAL_TLS_CLIENT_CA', type: 'string', default: '', description: 'PEM CA bundle of client certificates: mutual TLS; a certificate\'s spiffe:// URI SAN names the caller in --access-policy.' },
  { name: 'tls-client-certs', env: 'ZONAL_TLS_CLIENT_CERTS', type: 'string', default: 'require', description: 'With --tls-client-ca: require (no certificate, no connection) or optional (token-only clients may connect).' },
  { name: 'access-policy', env: 'ZONAL_ACCESS_POLICY', type: 'string', default: '', description: 'YAML/JSON access policy (watched): identities by token or SPIFFE ID, per-queue produce and work grants, rate limits, stream and queue caps. Without it and without TLS the dispatcher is open.' },
  { name: 'admin-token-file', env: 'ZONAL_ADMIN_TOKEN_FILE', type: 'string', default: '', description: 'File of bearer tokens (one per line, watched) the admin port asks for, except on /healthz and /readyz. Required when --admin-address is not loopback.' },
  { name: 'xds-registration-token-file', env: 'ZONAL_XDS_REGISTRATION_TOKEN_FILE', type: 'string', default: '', description: 'File of shared tokens (one per line, watched): the embedded control plane requires one on registration, and this dispatcher presents the first when it registers. Required when --xds-address is not loopback.' },
  { name: 'security-poll-ms', env: 'ZONAL_SECURITY_POLL_MS', type: 'number', default: 5_000, description: 'How often the TLS files, the access policy and the token files are checked for changes.' },
  { name: 'config-public-keys', env: 'ZONAL_CONFIG_PUBLIC_KEYS', type: 'string', default: '', description: 'Comma-separated PEM files of ed25519 public keys; once set, unsigned runtime config is refused.' },
];

/** 'off' (or empty) turns an address setting off. */
function addressOrOff(values: FlagValues, name: string): string {
  const value = str(values, name);
  return value === 'off' ? '' : value;
}

export function serveOptions(values: FlagValues): ServerOptionsInput {
  const core: NonNullable<ServerOptionsInput['core']> = {};
  const set = (key: keyof typeof core, flag: string): void => {
    const value = num(values, flag);
    if (value !== undefined) (core as Record<string, number>)[key] = value;
  };
  const keepalive: Partial<KeepalivePolicyOptions> = {};
  const setKeepalive = (key: keyof KeepalivePolicyOptions, flag: string): void => {
    const value = num(values, flag);
    if (value !== undefined) keepalive[key] = value;
  };
  setKeepalive('minIntervalMs', 'heartbeat-min-interval-ms');
  setKeepalive('maxIntervalMs', 'heartbeat-max-interval-ms');
  setKeepalive('lbIdleWindowMs', 'lb-idle-window-ms');
  setKeepalive('deadPeerDetectMs', 'dead-peer-detect-ms');
  setKeepalive('heartbeatBudgetPerSec', 'heartbeat-budget-per-sec');
  setKeepalive('baseIdleMs', 'base-idle-ms');
  core.keepalive = keepalive;
  set('drainGraceMs', 'drain-grace-ms');
  set('maxPayloadBytes', 'max-payload-bytes');
  set('defaultMaxAttempts', 'default-max-attempts');
  set('defaultAttemptTimeoutMs', 'default-attempt-timeout-ms');
  set('maxSessionAgeMs', 'max-session-age-ms');
  set('taskLeaseMs', 'task-lease-ms');
  const dispatcherId = str(values, 'dispatcher-id');
  const registerWith = str(values, 'register-with');
  return {
    grpcAddress: str(values, 'grpc-address'),
    adminAddress: addressOrOff(values, 'admin-address'),
    dataDir: str(values, 'data-dir'),
    store: str(values, 'store'),
    sqliteSynchronous: str(values, 'sqlite-synchronous') as 'FULL' | 'NORMAL',
    allowDamagedStore: values['allow-damaged-store'] === true,
    zone: str(values, 'zone'),
    region: str(values, 'region'),
    ...(dispatcherId !== '' ? { dispatcherId } : {}),
    xdsAddress: addressOrOff(values, 'xds-address'),
    xdsFile: str(values, 'xds-file'),
    xdsHealthWindowMs: num(values, 'xds-health-window-ms') ?? 1_000,
    // 'off' registers nowhere, even with an embedded control plane.
    registerWith: registerWith === 'off' ? 'off' : registerWith,
    advertiseAddress: str(values, 'advertise-address'),
    drainPropagationMs: num(values, 'drain-propagation-ms') ?? 2_000,
    sloWebhookUrl: str(values, 'slo-webhook-url'),
    sloIntervalMs: num(values, 'slo-interval-ms') ?? 10_000,
    sloWindowMs: num(values, 'slo-window-ms') ?? 300_000,
    sloMinSamples: num(values, 'slo-min-samples') ?? 20,
    tracing: (str(values, 'tracing') || 'auto') as 'auto' | 'on' | 'off',
    config: str(values, 'config'),
    tlsCertFile: str(values, 'tls-cert'),
    tlsKeyFile: str(values, 'tls-key'),
    tlsClientCaFile: str(values, 'tls-client-ca'),
    tlsClientCerts: (str(values, 'tls-client-certs') || 'require') as 'require' | 'optional',
    accessPolicyFile: str(values, 'access-policy'),
    adminTokenFile: str(values, 'admin-token-file'),
    xdsRegistrationTokenFile: str(values, 'xds-registration-token-file'),
    securityPollMs: num(values, 'security-poll-ms') ?? 5_000,
    configPublicKeyFiles: str(values, 'config-public-keys')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    core,
  };
}

export async function serveCommand(values: FlagValues): Promise<void> {
  const level = str(values, 'log-level');
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level)) throw new UsageError(`--log-level must be debug, info, warn, error or silent, got "${level.slice(0, 40)}"`);
  setLogLevel(level as LogLevel);
  const startedAtMs = Date.now();
  const server = await startServer(serveOptions(values));
  const pidEntry = writePidFile(server.options.dataDir, startedAtMs);
  // Machine-readable readiness line for scripts and tests.
  process.stdout.write(
    JSON.stringify({ event: 'listening', grpcAddress: server.grpcAddress, adminAddress: server.adminAddress, xdsAddress: server.xdsAddress, zone: server.options.zone, pid: process.pid }) + '\n',
  );
  let stopping = false;
  const stop = (signal: string): void => {
    // A second signal while stopping (the kubelet's SIGTERM after a preStop `zonal drain`) changes nothing:
    // the drain already under way finishes. Listening with on, not once, keeps the default action (exit at once) away.
    if (stopping) {
      process.stdout.write(JSON.stringify({ event: 'already-stopping', signal }) + '\n');
      return;
    }
    stopping = true;
    process.stdout.write(JSON.stringify({ event: 'stopping', signal }) + '\n');
    server.stop().then(
      () => {
        // Last, after the drain and the final flush: `zonal drain` returns when this is gone.
        removePidFile(server.options.dataDir, pidEntry);
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`zonal: shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
