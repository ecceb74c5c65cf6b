import { startHttpServer } from '../admin/admin-server';
import { createLogger, setLogLevel, type LogLevel } from '../log';
import { isLoopbackHost } from '../app/server-options';
import { TokenFile } from '../security/token-file';
import { startControlPlane } from '../xds/xds-server';
import { num, str, UsageError, type FlagSpec, type FlagValues } from './flags';

export const XDS_SUMMARY = 'Runs the xDS control plane alone: ADS for xds:/// clients, and the registry dispatchers heartbeat to.';

export const XDS_FLAGS: FlagSpec[] = [
  { name: 'address', env: 'ZONAL_XDS_ADDRESS', type: 'string', default: '127.0.0.1:18000', description: 'ADS + Registry listen address. Plaintext (grpc-js-xds clients speak no TLS to it): keep it on localhost, a pod network or a private network.' },
  { name: 'registration-token-file', env: 'ZONAL_XDS_REGISTRATION_TOKEN_FILE', type: 'string', default: '', description: 'File of shared tokens (one per line, watched); a dispatcher registers only with one (its --xds-registration-token-file). Required when --address is not loopback.' },
  { name: 'admin-token-file', env: 'ZONAL_XDS_ADMIN_TOKEN_FILE', type: 'string', default: '', description: 'File of bearer tokens the admin port asks for, except on /healthz. Required when --admin-address is not loopback.' },
  { name: 'file', env: 'ZONAL_XDS_FILE', type: 'string', default: '', description: 'JSON file of static endpoints and policy (watched).' },
  { name: 'health-window-ms', env: 'ZONAL_XDS_HEALTH_WINDOW_MS', type: 'number', default: 1_000, description: 'A dispatcher silent this long is served UNHEALTHY.' },
  { name: 'admin-address', env: 'ZONAL_XDS_ADMIN_ADDRESS', type: 'string', default: '127.0.0.1:19464', description: "HTTP /healthz and /xds/status; 'off' disables it." },
  { name: 'log-level', env: 'ZONAL_LOG_LEVEL', type: 'string', default: 'info', description: 'debug, info, warn or error.' },
];

const hostOf = (address: string): string => address.slice(0, Math.max(0, address.lastIndexOf(':')));

export async function xdsCommand(values: FlagValues): Promise<void> {
  setLogLevel(str(values, 'log-level') as LogLevel);
  const address = str(values, 'address');
  const adminAddress = str(values, 'admin-address');
  const registrationTokenFile = str(values, 'registration-token-file');
  const adminTokenFile = str(values, 'admin-token-file');
  if (!isLoopbackHost(hostOf(address)) && registrationTokenFile === '') {
    throw new UsageError(`--address ${address} is beyond loopback: give --registration-token-file, or anyone who reaches it could register an endpoint (docs/security.md)`);
  }
  if (adminAddress !== '' && adminAddress !== 'off' && !isLoopbackHost(hostOf(adminAddress)) && adminTokenFile === '') {
    throw new UsageError(`--admin-address ${adminAddress} is beyond loopback: give --admin-token-file, or bind it to 127.0.0.1`);
  }
  const log = createLogger('xds');
  const tokenFile = (file: string, what: string): TokenFile | undefined =>
    file === '' ? undefined : new TokenFile(file, 5_000, (error) => log.error(`${what} token file changed but cannot be used; keeping the last good tokens`, { error }));
  const registrationToken = tokenFile(registrationTokenFile, 'registration');
  const adminToken = tokenFile(adminTokenFile, 'admin');
  const running = await startControlPlane({
    address,
    file: str(values, 'file'),
    healthWindowMs: num(values, 'health-window-ms') ?? 1_000,
    ...(registrationToken !== undefined ? { registrationAuth: registrationToken } : {}),
  });
  let adminBound = '';
  const admin =
    adminAddress !== '' && adminAddress !== 'off'
      ? await startHttpServer(adminAddress.slice(0, adminAddress.lastIndexOf(':')), Number(adminAddress.slice(adminAddress.lastIndexOf(':') + 1)), {
          '/healthz': () => ({ status: 200, body: { status: 'ok' } }),
          '/xds/status': () => ({ status: 200, body: running.plane.status() }),
        }, adminToken !== undefined ? { matchesHeader: (h) => adminToken.matchesHeader(h), openPaths: new Set(['/healthz']) } : undefined)
      : undefined;
  if (admin !== undefined) {
    const a = admin.address();
    adminBound = typeof a === 'object' && a !== null ? `${adminAddress.slice(0, adminAddress.lastIndexOf(':'))}:${a.port}` : '';
  }
  process.stdout.write(JSON.stringify({ event: 'listening', xdsAddress: running.address, adminAddress: adminBound, pid: process.pid }) + '\n');
  const stop = (): void => {
    admin?.closeAllConnections();
    admin?.close();
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
