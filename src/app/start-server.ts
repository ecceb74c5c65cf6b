import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAdminServer } from '../admin/admin-server';
import { heatmapPageRoutes } from '../admin/heatmap-page';
import { createLogger, currentLogLevel, setLogLevel } from '../log';
import { DEFAULT_CALL_POLICY } from '../client/call-policy';
import { openConfigSource } from '../config/open-source';
import { RuntimeConfig } from '../config/runtime-config';
import { DEFAULT_SLO_THRESHOLDS } from '../config/slo-thresholds';
import { PublicKeyRing } from '../config/signature';
import { compileBreakerOptions } from '../resilience/breaker';
import type { DataDirLock } from '../store/sqlite/data-dir-lock';
import type { TaskStore } from '../store/task-store';
import { Dispatcher } from '../server/dispatcher';
import { startGrpcService } from '../server/grpc-server';
import { createDispatcherRegistry, type DispatcherRegistry } from '../telemetry/prometheus';
import { startControlPlane } from '../xds/xds-server';
import { RegistrationClient, registrationBreakerDefaults } from '../xds/registration-client';
import type { ControlPlane } from '../xds/control-plane';
import { systemClock } from '../core/clock';
import { AccessGuard } from '../security/access-guard';
import { AccessPolicyFile } from '../security/policy-file';
import { serverCredentials, TlsFileProvider } from '../security/tls-files';
import { TokenFile } from '../security/token-file';
import { openStore } from './open-store';
import { buildOperatorsView } from './telemetry';
import { compileServerOptions, type ServerOptions, type ServerOptionsInput } from './server-options';
import { parseStoreUrl, redactStoreUrl } from './store-url';

const log = createLogger('server');

export interface RunningServer {
  readonly dispatcher: Dispatcher;
  readonly options: ServerOptions;
  /** host:port the gRPC server listens on (with the real port when 0 was asked). */
  readonly grpcAddress: string;
  readonly adminAddress: string;
  /** The embedded control plane's address, '' when none runs. */
  readonly xdsAddress: string;
  readonly controlPlane: ControlPlane | undefined;
  /** The runtime settings in force and where they came from. */
  readonly runtimeConfig: RuntimeConfig;
  /** This dispatcher's registration with a control plane, if it registers. */
  readonly registration: RegistrationClient | undefined;
  /** Graceful stop: GoAway, drain for shutdownGraceMs, flush, close. */
  stop(): Promise<void>;
}

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  if (i < 0) throw new RangeError(`address "${address}" must be host:port`);
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`address "${address}" has an invalid port`);
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

/** The security parts of a dispatcher (docs/security.md), each absent when not configured. */
interface Security {
  credentials: ReturnType<typeof serverCredentials> | undefined;
  guard: AccessGuard | undefined;
  adminToken: TokenFile | undefined;
  registrationToken: TokenFile | undefined;
  close(): void;
}

/**
 * Reads the TLS files, the access policy and the token files (each throws
 * on a bad first read, so the dispatcher does not start), and follows their
 * changes: a good change is in force for the next connection or call, a bad
 * one is logged and the last good one stays.
 */
function openSecurity(options: ServerOptions, store: TaskStore): Security {
  const closers: (() => void)[] = [];
  const close = (): void => {
    for (const fn of closers.splice(0)) fn();
  };
  try {
    const pollMs = options.securityPollMs;
    const slog = createLogger('security');
    let credentials: Security['credentials'];
    if (options.tlsCertFile !== '') {
      const provider = new TlsFileProvider({ certFile: options.tlsCertFile, keyFile: options.tlsKeyFile, ...(options.tlsClientCaFile !== '' ? { caFile: options.tlsClientCaFile } : {}) }, pollMs, {
        onReload: ({ notAfter }) => slog.info('TLS files changed: new connections use them', { notAfter }),
        onError: (error) => slog.error('TLS files changed but cannot be used; keeping the last good ones', { error }),
      });
      closers.push(() => provider.close());
      credentials = serverCredentials(provider, options.tlsClientCaFile !== '' ? options.tlsClientCerts : 'none');
      slog.info('TLS on the gRPC port', { mutual: options.tlsClientCaFile !== '', clientCerts: options.tlsClientCaFile !== '' ? options.tlsClientCerts : 'none', notAfter: provider.notAfter });
    }
    let guard: AccessGuard | undefined;
    if (options.accessPolicyFile !== '') {
      const policy = new AccessPolicyFile(options.accessPolicyFile, pollMs, {
        onReload: () => slog.info('access policy changed: in force for new calls', { file: options.accessPolicyFile }),
        onError: (error) => slog.error('access policy changed but is invalid; keeping the last good one', { error }),
      });
      closers.push(() => policy.close());
      guard = new AccessGuard({
        policy: () => policy.current(),
        clock: systemClock,
        readQueued: (queue) => store.pendingCount(queue),
        heldKeys: (keys) => store.heldKeys(keys, systemClock.nowMs()),
        onError: (error) => slog.warn('reading queue depths for the queue caps failed; using the last figures', { error }),
      });
    }
    const tokenFile = (file: string, what: string): TokenFile | undefined => {
      if (file === '') return undefined;
      const tokens = new TokenFile(file, pollMs, (error) => slog.error(`${what} token file changed but cannot be used; keeping the last good tokens`, { error }));
      closers.push(() => tokens.close());
      return tokens;
    };
    const adminToken = tokenFile(options.adminTokenFile, 'admin');
    const registrationToken = tokenFile(options.xdsRegistrationTokenFile, 'xDS registration');
    return { credentials, guard, adminToken, registrationToken, close };
  } catch (err) {
    close();
    throw err;
  }
}

/** Steps that undo a partial start, in the order they were set up. */
type Undo = (() => Promise<void> | void)[];

/**
 * Starts a dispatcher: data dir lock, store, recovery, gRPC service and
 * admin HTTP. Throws DataDirInUseError when another process holds
 * `dataDir` (with or without an external `store`: the data dir also holds
 * the runtime config's snapshot), and StoreDamagedError for a damaged store
 * (unless `allowDamagedStore`). A failed start undoes what it set up and
 * releases the lock.
 */
export async function startServer(input: ServerOptionsInput = {}, store?: TaskStore): Promise<RunningServer> {
  const options = compileServerOptions(input);
  // First, and released last: nothing touches the data dir until this process owns it.
  const lock = await lockDataDir(options, store);
  const undo: Undo = [];
  try {
    return await startLocked(options, lock, undo, store);
  } catch (err) {
    for (const step of undo.reverse()) {
      await Promise.resolve()
        .then(step)
        .catch((cleanupErr: unknown) => log.error('undoing a failed start failed', { error: cleanupErr }));
    }
    lock?.release();
    throw err;
  }
}

/**
 * The data dir's lock (data-dir-lock.ts): one dispatcher per SQLite file. A
 * PostgreSQL dispatcher keeps only the runtime config's snapshot there and
 * takes none, so it never loads better-sqlite3 (give each its own data dir
 * all the same).
 */
async function lockDataDir(options: ServerOptions, store: TaskStore | undefined): Promise<DataDirLock | undefined> {
  if (store === undefined && parseStoreUrl(options.store).kind === 'postgres') return undefined;
  const { DataDirLock } = await import('../store/sqlite/data-dir-lock');
  return DataDirLock.acquire(options.dataDir);
}

async function startLocked(options: ServerOptions, lock: DataDirLock | undefined, undo: Undo, store: TaskStore | undefined): Promise<RunningServer> {
  const registrationIntervalMs = Math.max(50, Math.floor(options.xdsHealthWindowMs / 4));
  // Runtime config first, so the first session already runs on it. start()
  // reads the last-good snapshot and a file source at once and never waits
  // on Nacos: that converges in the background.
  const runtimeConfig = new RuntimeConfig({
    baseline: {
      core: options.core,
      call: DEFAULT_CALL_POLICY,
      breaker: compileBreakerOptions(undefined, registrationBreakerDefaults(registrationIntervalMs)),
      slo: DEFAULT_SLO_THRESHOLDS,
      logLevel: currentLogLevel(),
    },
    ...(options.config !== '' ? { source: openConfigSource(options.config) } : {}),
    dataDir: options.dataDir,
    publicKeys: PublicKeyRing.fromFiles(options.configPublicKeyFiles),
  });
  runtimeConfig.start();
  undo.push(() => runtimeConfig.close());
  const initial = runtimeConfig.current;
  setLogLevel(initial.logLevel);
  const taskStore = store ?? (await openStore(options));
  const closeStore = (): Promise<void> => taskStore.close();
  undo.push(closeStore);
  const view = buildOperatorsView(options, taskStore, runtimeConfig);
  undo.push(() => view.stop());
  const security = openSecurity(options, taskStore);
  undo.push(() => security.close());
  // Built before the dispatcher, whose events it counts; it reads the dispatcher only at scrape time.
  let controlPlaneRef: ControlPlane | undefined;
  let registrationRef: RegistrationClient | undefined;
  const metrics: DispatcherRegistry | undefined =
    options.adminAddress !== ''
      ? createDispatcherRegistry({
          stats: () => dispatcher.stats(),
          storeCircuit: () => dispatcher.storeCircuit(),
          runtimeConfig,
          controlPlaneCircuit: () => registrationRef?.circuitState(),
          xdsNacks: () => controlPlaneRef?.nackCount,
          xdsCounts: () => controlPlaneRef?.counts,
          readyDepth: () => taskStore.readyDepth(Date.now()),
          keepaliveIntervals: () => dispatcher.keepaliveIntervals(),
          slo: () => view.slo.view(),
          observerErrors: () => dispatcher.observerErrors,
          refusals: () => security.guard?.refusals() ?? [],
        })
      : undefined;
  const dispatcher: Dispatcher = new Dispatcher({
    observers: [...view.observers, ...(metrics !== undefined ? [metrics.observer] : [])],
    core: initial.core,
    store: taskStore,
    finishedRetentionMs: options.finishedRetentionMs,
    sweepIntervalMs: options.sweepIntervalMs,
    remoteWatchPollMs: options.remoteWatchPollMs,
    identity: { id: options.dispatcherId, zone: options.zone, address: options.advertiseAddress !== '' ? options.advertiseAddress : options.grpcAddress },
  });
  const { swept } = await dispatcher.start();
  // From here the dispatcher's shutdown closes the store.
  undo.splice(undo.indexOf(closeStore), 1);
  undo.push(() => dispatcher.shutdown(0));
  view.start();

  const grpc = await startGrpcService(dispatcher, {
    address: options.grpcAddress,
    maxMessageBytes: options.maxMessageBytes,
    http2Keepalive: options.http2Keepalive,
    helloTimeoutMs: options.helloTimeoutMs,
    ...(security.credentials !== undefined ? { credentials: security.credentials } : {}),
    ...(security.guard !== undefined ? { guard: security.guard } : {}),
  });
  undo.push(() => grpc.stop());
  const grpcAddress = grpc.address;

  // xDS: an embedded control plane, and this dispatcher's registration with one.
  const controlPlane = options.xdsAddress !== '' ? await startControlPlane({
          address: options.xdsAddress,
          file: options.xdsFile,
          healthWindowMs: options.xdsHealthWindowMs,
          ...(security.registrationToken !== undefined ? { registrationAuth: security.registrationToken } : {}),
        }) : undefined;
  if (controlPlane !== undefined) undo.push(() => controlPlane.stop());
  const registerWith = options.registerWith === 'off' ? '' : options.registerWith !== '' ? options.registerWith : (controlPlane?.address ?? '');
  const registration =
    registerWith !== ''
      ? new RegistrationClient({
          controlPlane: registerWith,
          endpointId: options.dispatcherId,
          address: options.advertiseAddress !== '' ? options.advertiseAddress : grpcAddress,
          zone: options.zone,
          region: options.region,
          intervalMs: registrationIntervalMs,
          breaker: initial.breaker,
          onHealthyZones: (zones) => dispatcher.rebalanceZones(options.zone, zones),
          ...(security.registrationToken !== undefined ? { token: () => security.registrationToken!.token } : {}),
        })
      : undefined;
  registration?.start();
  if (registration !== undefined) undo.push(() => registration.stop());
  controlPlaneRef = controlPlane?.plane;
  registrationRef = registration;

  // Live effect of runtime updates: nothing reconnects.
  runtimeConfig.onChange((next, previous) => {
    if (next.core !== previous.core) dispatcher.setCoreOptions(next.core);
    if (next.breaker !== previous.breaker) registration?.setBreakerOptions(next.breaker);
    if (next.logLevel !== previous.logLevel) setLogLevel(next.logLevel);
  });

  let admin: http.Server | undefined;
  let adminAddress = '';
  if (options.adminAddress !== '') {
    const { host, port: adminPort } = splitHostPort(options.adminAddress);
    const registry = metrics!.registry;
    admin = await startAdminServer(dispatcher, host, adminPort, {
      '/metrics': async () => ({ status: 200, body: await registry.metrics(), contentType: registry.contentType }),
      ...view.routes,
      ...heatmapPageRoutes(),
      '/config': () => ({ status: 200, body: runtimeConfig.status() }),
      ...(controlPlane !== undefined ? { '/xds/status': () => ({ status: 200, body: controlPlane.plane.status() }) } : {}),
    }, security.adminToken);
    adminAddress = `${host}:${(admin.address() as AddressInfo).port}`;
  }
  log.info('dispatcher started', { grpcAddress, adminAddress, store: redactStoreUrl(options.store), owner: dispatcher.owner, swept, zone: options.zone, xds: controlPlane?.address ?? '', registerWith });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info('stopping', { graceMs: options.shutdownGraceMs });
      if (registration !== undefined) {
        // DRAINING in EDS first, so clients stop sending here before the workers get GoAway.
        const propagated = await registration.drain(options.drainPropagationMs);
        log.info('DRAINING propagated to xDS clients', propagated);
      }
      await dispatcher.shutdown(options.shutdownGraceMs);
      await view.stop();
      await registration?.stop();
      await controlPlane?.stop();
      await runtimeConfig.close();
      await grpc.stop();
      security.close();
      if (admin !== undefined) {
        admin.closeAllConnections();
        await new Promise<void>((resolve) => admin.close(() => resolve()));
      }
      // Last: the next dispatcher may start only once this one is done with the data dir.
      lock?.release();
      log.info('stopped');
    })();
    return stopping;
  };

  return { dispatcher, options, grpcAddress, adminAddress, xdsAddress: controlPlane?.address ?? '', controlPlane: controlPlane?.plane, runtimeConfig, registration, stop };
}
