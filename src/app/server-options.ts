import * as os from 'node:os';
import { parseStoreUrl } from './store-url';
import { parseEndpointAddress } from '../xds/endpoints';
import { compileCoreOptions, type CoreOptions, type CoreOptionsInput } from '../core/options';
import { HTTP2_KEEPALIVE_DEFAULTS, validateHttp2Keepalive, type Http2KeepaliveConfig } from '../core/http2-keepalive';

/**
 * Startup-only settings of `zonal serve` (ports, store). They apply when the
 * process starts; changing them needs a restart. The runtime tuning lives in
 * CoreOptions.
 */
export interface ServerOptions {
  /** gRPC listen address, host:port; port 0 picks a free one. */
  grpcAddress: string;
  /** Admin HTTP (health) address, host:port; '' disables it. */
  adminAddress: string;
  /** The lock, the runtime config's last-good snapshot, and (by default) the SQLite store. */
  dataDir: string;
  /** Where tasks live: `sqlite:<dir>` (default `sqlite:<dataDir>`) or `postgres://…` (store-url.ts). */
  store: string;
  /** FULL survives power loss; NORMAL survives process crashes only. */
  sqliteSynchronous: 'FULL' | 'NORMAL';
  /**
   * Start on a store that fails its integrity check: serve what can be read,
   * or move an unreadable file aside and start empty (docs/operations.md).
   */
  allowDamagedStore: boolean;
  /** Largest gRPC message accepted (a SubmitBatch carries many payloads). */
  maxMessageBytes: number;
  helloTimeoutMs: number;
  finishedRetentionMs: number;
  /** Grace period for in-flight tasks on SIGTERM. */
  shutdownGraceMs: number;
  /** How often the store is swept for tasks of dead dispatchers and schedule-to-start deadlines. */
  sweepIntervalMs: number;
  /** How often tasks watched here but held elsewhere are read again. */
  remoteWatchPollMs: number;
  /** This dispatcher's zone and region, announced to the control plane and to workers. */
  zone: string;
  region: string;
  /** Stable name of this instance (default host-pid). */
  dispatcherId: string;
  /** Embedded xDS control plane listen address; '' runs none. */
  xdsAddress: string;
  /** JSON file of static endpoints and policy for the embedded control plane. */
  xdsFile: string;
  /** The embedded control plane marks a silent dispatcher UNHEALTHY after this long. */
  xdsHealthWindowMs: number;
  /** Control plane to register with; '' means the embedded one (if any). */
  registerWith: string;
  /** ip:port clients dial to reach this dispatcher; '' means the gRPC address it bound. */
  advertiseAddress: string;
  /** On shutdown, how long to wait for xDS clients to acknowledge DRAINING before GoAway. */
  drainPropagationMs: number;
  /**
   * Runtime config source: a YAML/JSON file path (watched) or
   * nacos://host:8848/<dataId>?group=&namespace= ; '' runs on startup
   * options alone. Its documents may change the keys of runtime-schema.ts
   * while the process runs.
   */
  config: string;
  /** PEM files of ed25519 public keys; once any is given, unsigned runtime documents are refused. */
  configPublicKeyFiles: string[];
  /**
   * TLS on the gRPC port (docs/security.md): PEM certificate chain and key;
   * both '' serves plaintext. Replaced without a restart when the files
   * change (an unusable set keeps the last good one).
   */
  tlsCertFile: string;
  tlsKeyFile: string;
  /** CA bundle of client certificates: set, the port speaks mutual TLS. */
  tlsClientCaFile: string;
  /** With a client CA: 'require' refuses clients without a certificate it signed; 'optional' lets them in to present a token. */
  tlsClientCerts: 'require' | 'optional';
  /** How often the TLS files, the access policy and the token files are checked for changes. */
  securityPollMs: number;
  /**
   * Access policy file (YAML/JSON, watched): identities, per-queue roles,
   * admission limits. '' with no TLS leaves the dispatcher open; TLS without
   * a policy refuses to start.
   */
  accessPolicyFile: string;
  /** File holding the bearer token the admin port asks for (all but /healthz and /readyz); required when it binds beyond loopback. */
  adminTokenFile: string;
  /**
   * File holding the shared token of the control plane's registration port:
   * the embedded control plane requires it, and this dispatcher presents it
   * when it registers. Required when the embedded control plane binds beyond loopback.
   */
  xdsRegistrationTokenFile: string;
  /** HTTP/2 PING policy; the SDK's defaults agree with these defaults. */
  http2Keepalive: Http2KeepaliveConfig;
  /** POSTed a JSON notice at each SLO breach and recovery; '' sends none. */
  sloWebhookUrl: string;
  /** How often the built-in SLO check runs, and the window it judges. */
  sloIntervalMs: number;
  sloWindowMs: number;
  /** Fewest dispatch-latency samples of a pair in the window for it to be judged. */
  sloMinSamples: number;
  /** How often dispatchers sharing a PostgreSQL store exchange their heatmap rows. */
  heatmapShareIntervalMs: number;
  /**
   * Spans of queued, assigned and completed tasks: 'auto' (the default)
   * makes them when the OTEL_* environment asks for traces (otel-sdk.ts),
   * 'on' always (with whatever tracer provider the process registered),
   * 'off' never.
   */
  tracing: 'auto' | 'on' | 'off';
  core: CoreOptions;
}

export type ServerOptionsInput = Partial<Omit<ServerOptions, 'core' | 'http2Keepalive'>> & { core?: CoreOptionsInput; http2Keepalive?: Partial<Http2KeepaliveConfig> };

export function compileServerOptions(input: ServerOptionsInput = {}): ServerOptions {
  const dataDir = input.dataDir ?? './data';
  const core = compileCoreOptions(input.core);
  const options: ServerOptions = {
    grpcAddress: input.grpcAddress ?? '127.0.0.1:50051',
    adminAddress: input.adminAddress ?? '127.0.0.1:9464',
    dataDir,
    store: input.store !== undefined && input.store !== '' ? input.store : `sqlite:${dataDir}`,
    sqliteSynchronous: input.sqliteSynchronous ?? 'FULL',
    allowDamagedStore: input.allowDamagedStore ?? false,
    maxMessageBytes: input.maxMessageBytes ?? 64 * 1024 * 1024,
    helloTimeoutMs: input.helloTimeoutMs ?? 10_000,
    finishedRetentionMs: input.finishedRetentionMs ?? 7 * 24 * 3600_000,
    shutdownGraceMs: input.shutdownGraceMs ?? core.drainGraceMs,
    sweepIntervalMs: input.sweepIntervalMs ?? 1_000,
    remoteWatchPollMs: input.remoteWatchPollMs ?? 100,
    zone: input.zone ?? '',
    region: input.region ?? '',
    dispatcherId: input.dispatcherId ?? `${os.hostname()}-${process.pid}`,
    xdsAddress: input.xdsAddress ?? '',
    xdsFile: input.xdsFile ?? '',
    xdsHealthWindowMs: input.xdsHealthWindowMs ?? 1_000,
    registerWith: input.registerWith ?? '',
    advertiseAddress: input.advertiseAddress ?? '',
    drainPropagationMs: input.drainPropagationMs ?? 2_000,
    config: input.config ?? '',
    configPublicKeyFiles: input.configPublicKeyFiles ?? [],
    tlsCertFile: input.tlsCertFile ?? '',
    tlsKeyFile: input.tlsKeyFile ?? '',
    tlsClientCaFile: input.tlsClientCaFile ?? '',
    tlsClientCerts: input.tlsClientCerts ?? 'require',
    securityPollMs: input.securityPollMs ?? 5_000,
    accessPolicyFile: input.accessPolicyFile ?? '',
    adminTokenFile: input.adminTokenFile ?? '',
    xdsRegistrationTokenFile: input.xdsRegistrationTokenFile ?? '',
    http2Keepalive: { ...HTTP2_KEEPALIVE_DEFAULTS, ...input.http2Keepalive },
    sloWebhookUrl: input.sloWebhookUrl ?? '',
    sloIntervalMs: input.sloIntervalMs ?? 10_000,
    sloWindowMs: input.sloWindowMs ?? 300_000,
    sloMinSamples: input.sloMinSamples ?? 20,
    heatmapShareIntervalMs: input.heatmapShareIntervalMs ?? 10_000,
    tracing: input.tracing ?? 'auto',
    core,
  };
  if (options.sloWebhookUrl !== '') {
    let url: URL;
    try {
      url = new URL(options.sloWebhookUrl);
    } catch {
      throw new RangeError(`sloWebhookUrl must be an http(s) URL, got "${options.sloWebhookUrl.slice(0, 100)}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RangeError(`sloWebhookUrl must be an http(s) URL, got "${url.protocol}"`);
    if (url.username !== '' || url.password !== '') throw new RangeError('sloWebhookUrl must not carry a user or password (fetch refuses them, and logs would show them): put a token in its path or query');
  }
  if (options.sloIntervalMs < 100 || options.sloIntervalMs > 600_000) throw new RangeError(`sloIntervalMs must be between 100 and 600000, got ${options.sloIntervalMs}`);
  if (options.sloWindowMs < 10_000 || options.sloWindowMs > 3_600_000) throw new RangeError(`sloWindowMs must be between 10000 and 3600000, got ${options.sloWindowMs}`);
  if (!Number.isInteger(options.sloMinSamples) || options.sloMinSamples < 1 || options.sloMinSamples > 1_000_000) throw new RangeError(`sloMinSamples must be a whole number 1..1000000, got ${options.sloMinSamples}`);
  if (options.heatmapShareIntervalMs < 100 || options.heatmapShareIntervalMs > 600_000) throw new RangeError(`heatmapShareIntervalMs must be between 100 and 600000, got ${options.heatmapShareIntervalMs}`);
  if (!['auto', 'on', 'off'].includes(options.tracing)) throw new RangeError(`tracing must be auto, on or off, got ${String(options.tracing)}`);
  validateHttp2Keepalive(options.http2Keepalive);
  checkSecurityOptions(options);
  if (options.xdsHealthWindowMs < 100 || options.xdsHealthWindowMs > 60_000) {
    throw new RangeError(`xdsHealthWindowMs must be between 100 and 60000, got ${options.xdsHealthWindowMs}`);
  }
  if (options.drainPropagationMs < 0 || options.drainPropagationMs > 60_000) {
    throw new RangeError(`drainPropagationMs must be between 0 and 60000, got ${options.drainPropagationMs}`);
  }
  if (options.maxMessageBytes < core.maxPayloadBytes + 64 * 1024) {
    throw new RangeError(`maxMessageBytes (${options.maxMessageBytes}) must exceed maxPayloadBytes (${core.maxPayloadBytes}) by at least 64 KiB`);
  }
  parseStoreUrl(options.store);
  if (options.sweepIntervalMs < 50 || options.sweepIntervalMs > 60_000) throw new RangeError(`sweepIntervalMs must be between 50 and 60000, got ${options.sweepIntervalMs}`);
  if (options.remoteWatchPollMs < 10 || options.remoteWatchPollMs > 60_000) throw new RangeError(`remoteWatchPollMs must be between 10 and 60000, got ${options.remoteWatchPollMs}`);
  if (options.sqliteSynchronous !== 'FULL' && options.sqliteSynchronous !== 'NORMAL') {
    throw new RangeError(`sqliteSynchronous must be FULL or NORMAL, got ${String(options.sqliteSynchronous)}`);
  }
  return options;
}

/** Whether `host` (of a listen address) is reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function hostOf(address: string): string {
  return address.slice(0, Math.max(0, address.lastIndexOf(':')));
}

/** The rules of docs/security.md that a start-up must meet; each refusal says what to set. */
function checkSecurityOptions(o: ServerOptions): void {
  if ((o.tlsCertFile === '') !== (o.tlsKeyFile === '')) throw new RangeError('give both --tls-cert and --tls-key (the certificate and its private key), or neither');
  if (o.tlsClientCaFile !== '' && o.tlsCertFile === '') throw new RangeError('--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key too');
  if (o.tlsClientCerts !== 'require' && o.tlsClientCerts !== 'optional') throw new RangeError(`tlsClientCerts must be require or optional, got ${String(o.tlsClientCerts)}`);
  if (!Number.isInteger(o.securityPollMs) || o.securityPollMs < 100 || o.securityPollMs > 3_600_000) throw new RangeError(`securityPollMs must be a whole number 100..3600000, got ${o.securityPollMs}`);
  if (o.tlsCertFile !== '' && o.accessPolicyFile === '') {
    throw new RangeError(
      'TLS is on (--tls-cert) but no --access-policy is given, and a TLS dispatcher is never left open: write a policy (docs/security.md). For encryption with open access it is `anonymous: {produce: ["*"], work: ["*"]}`',
    );
  }
  if (o.adminAddress !== '' && !isLoopbackHost(hostOf(o.adminAddress)) && o.adminTokenFile === '') {
    throw new RangeError(`the admin port binds ${o.adminAddress}, beyond loopback: give --admin-token-file (its routes but /healthz and /readyz then ask for "Authorization: Bearer <token>"), or bind it to 127.0.0.1`);
  }
  if (o.xdsAddress !== '' && !isLoopbackHost(hostOf(o.xdsAddress)) && o.xdsRegistrationTokenFile === '') {
    throw new RangeError(`the embedded xDS control plane binds ${o.xdsAddress}, beyond loopback: give --xds-registration-token-file, or anyone who reaches it could register an endpoint (docs/security.md)`);
  }
  // The control plane refuses anything else at every heartbeat: said at start, not as a warning per heartbeat.
  if (o.advertiseAddress !== '' && o.registerWith !== 'off' && (o.registerWith !== '' || o.xdsAddress !== '')) {
    try {
      parseEndpointAddress(o.advertiseAddress);
    } catch (err) {
      throw new RangeError(`advertiseAddress: ${err instanceof Error ? err.message : String(err)}; an IPv6 address goes in brackets, as [fd00::5]:50051`);
    }
  }
}
