import { describe, expect, it } from 'vitest';
// Not a public API of grpc-js-xds: the validator its client runs on the bootstrap it reads.
import { validateBootstrapConfig } from '@grpc/grpc-js-xds/build/src/xds-bootstrap';
import { buildBootstrap } from '../../../src/xds/bootstrap';

describe('buildBootstrap', () => {
  it('one insecure xDS v3 server and a node with the locality', () => {
    expect(buildBootstrap({ xdsServer: '10.0.0.9:18000', zone: 'a', region: 'r1' })).toEqual({
      xds_servers: [{ server_uri: '10.0.0.9:18000', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: 'zonal-a', locality: { zone: 'a', region: 'r1' } },
    });
  });

  it('node id: given, or zonal-<zone>, or zonal-any without a zone', () => {
    expect(buildBootstrap({ xdsServer: 'cp:18000', zone: 'a', region: 'r1', nodeId: 'host-7' })).toMatchObject({ node: { id: 'host-7' } });
    expect(buildBootstrap({ xdsServer: 'cp:18000', zone: '', region: '' })).toMatchObject({ node: { id: 'zonal-any', locality: { zone: '', region: '' } } });
  });

  it('survives JSON (it is written to a file or GRPC_XDS_BOOTSTRAP_CONFIG)', () => {
    const doc = buildBootstrap({ xdsServer: '10.0.0.9:18000', zone: 'b', region: 'r2' });
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
  });

  it('is accepted by the grpc-js-xds bootstrap validator, which keeps the locality the control plane orders by', () => {
    const info = validateBootstrapConfig(buildBootstrap({ xdsServer: '10.0.0.9:18000', zone: 'a', region: 'r1' }));
    expect(info.xdsServers).toEqual([{ server_uri: '10.0.0.9:18000', channel_creds: [{ type: 'insecure', config: undefined }], server_features: ['xds_v3'] }]);
    expect(info.node).toEqual({ id: 'zonal-a', locality: { zone: 'a', region: 'r1' } });
  });
});
