/**
 * The xDS bootstrap a client reads (once per process) from
 * GRPC_XDS_BOOTSTRAP (a file) or GRPC_XDS_BOOTSTRAP_CONFIG (inline JSON).
 * The locality is what the control plane orders dispatchers by.
 */
export interface BootstrapInput {
  /** Control plane host:port. */
  xdsServer: string;
  zone: string;
  region: string;
  nodeId?: string;
}

export function buildBootstrap(input: BootstrapInput): Record<string, unknown> {
  return {
    xds_servers: [
      {
        server_uri: input.xdsServer,
        // grpc-js-xds allows only insecure or google_default towards the control plane.
        channel_creds: [{ type: 'insecure' }],
        server_features: ['xds_v3'],
      },
    ],
    node: {
      id: input.nodeId ?? `zonal-${input.zone || 'any'}`,
      locality: { zone: input.zone, region: input.region },
    },
  };
}
