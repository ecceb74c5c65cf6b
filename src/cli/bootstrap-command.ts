import { writeFileSync } from 'node:fs';
import { buildBootstrap } from '../xds/bootstrap';
import { str, UsageError, type FlagSpec, type FlagValues } from './flags';

export const BOOTSTRAP_SUMMARY = 'Writes an xDS bootstrap for clients in one zone (use it with GRPC_XDS_BOOTSTRAP=FILE).';

export const BOOTSTRAP_FLAGS: FlagSpec[] = [
  { name: 'zone', env: 'ZONAL_ZONE', type: 'string', description: "The clients' zone (required)." },
  { name: 'region', env: 'ZONAL_REGION', type: 'string', default: '', description: "The clients' region." },
  { name: 'xds', env: 'ZONAL_XDS_SERVER', type: 'string', default: '127.0.0.1:18000', description: 'Control plane host:port.' },
  { name: 'node-id', env: 'ZONAL_XDS_NODE_ID', type: 'string', default: '', description: 'xDS node id (default: zonal-<zone>).' },
  { name: 'out', env: 'ZONAL_BOOTSTRAP_OUT', type: 'string', default: '', description: 'File to write (default: standard output).' },
];

export async function bootstrapCommand(values: FlagValues): Promise<void> {
  const zone = str(values, 'zone');
  if (zone === '') throw new UsageError('--zone is required');
  const nodeId = str(values, 'node-id');
  const doc = buildBootstrap({ xdsServer: str(values, 'xds'), zone, region: str(values, 'region'), ...(nodeId !== '' ? { nodeId } : {}) });
  const text = JSON.stringify(doc, null, 2) + '\n';
  const out = str(values, 'out');
  if (out === '') process.stdout.write(text);
  else writeFileSync(out, text);
}
