import { readFileSync } from 'node:fs';

/**
 * The zone an xDS client runs in, as its bootstrap says (node.locality.zone):
 * GRPC_XDS_BOOTSTRAP_CONFIG (the JSON itself) or GRPC_XDS_BOOTSTRAP (a file),
 * as @grpc/grpc-js-xds reads them. '' for a target that is not xds:, or
 * when there is no readable bootstrap: the zone is then whatever the
 * application said.
 */
export function bootstrapZone(target: string, env: NodeJS.ProcessEnv = process.env): string {
  if (!target.startsWith('xds:')) return '';
  try {
    const text = env['GRPC_XDS_BOOTSTRAP_CONFIG'] ?? (env['GRPC_XDS_BOOTSTRAP'] !== undefined ? readFileSync(env['GRPC_XDS_BOOTSTRAP'], 'utf8') : undefined);
    if (text === undefined) return '';
    const zone = (JSON.parse(text) as { node?: { locality?: { zone?: unknown } } }).node?.locality?.zone;
    return typeof zone === 'string' ? zone : '';
  } catch {
    return '';
  }
}
