import { startHttpServer } from '../admin/admin-server';
import { setLogLevel, type LogLevel } from '../log';
import { startControlPlane } from '../xds/xds-server';
import { num, str, type FlagSpec, type FlagValues } from './flags';

export const XDS_SUMMARY = 'Runs the xDS control plane alone: ADS for xds:/// clients, and the registry dispatchers heartbeat to.';

export const XDS_FLAGS: FlagSpec[] = [
  { name: 'address', env: 'ZONAL_XDS_ADDRESS', type: 'string', default: '127.0.0.1:18000', description: 'ADS + Registry listen address. Plaintext: keep it on a private network.' },
  { name: 'file', env: 'ZONAL_XDS_FILE', type: 'string', default: '', description: 'JSON file of static endpoints and policy (watched).' },
  { name: 'health-window-ms', env: 'ZONAL_XDS_HEALTH_WINDOW_MS', type: 'number', default: 1_000, description: 'A dispatcher silent this long is served UNHEALTHY.' },
  { name: 'admin-address', env: 'ZONAL_XDS_ADMIN_ADDRESS', type: 'string', default: '127.0.0.1:19464', description: "HTTP /healthz and /xds/status; 'off' disables it." },
  { name: 'log-level', env: 'ZONAL_LOG_LEVEL', type: 'string', default: 'info', description: 'debug, info, warn or error.' },
];

export async function xdsCommand(values: FlagValues): Promise<void> {
  setLogLevel(str(values, 'log-level') as LogLevel);
  const running = await startControlPlane({
    address: str(values, 'address'),
    file: str(values, 'file'),
    healthWindowMs: num(values, 'health-window-ms') ?? 1_000,
  });
  const adminAddress = str(values, 'admin-address');
  let adminBound = '';
  const admin =
    adminAddress !== '' && adminAddress !== 'off'
      ? await startHttpServer(adminAddress.slice(0, adminAddress.lastIndexOf(':')), Number(adminAddress.slice(adminAddress.lastIndexOf(':') + 1)), {
          '/healthz': () => ({ status: 200, body: { status: 'ok' } }),
          '/xds/status': () => ({ status: 200, body: running.plane.status() }),
        })
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
