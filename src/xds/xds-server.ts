import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../log';
import { ControlPlane, type ControlPlaneOptions } from './control-plane';
import { shutdownGrpcServer } from '../protocol/grpc-shutdown';
import { watchControlPlaneFile } from './static-endpoints';
import { redactGrpcLogs } from '../security/grpc-log-redaction';

const log = createLogger('xds');

export interface RunningControlPlane {
  plane: ControlPlane;
  /** host:port the ADS and Registry services listen on. */
  address: string;
  stop(): Promise<void>;
}

export interface StartControlPlaneOptions extends ControlPlaneOptions {
  /**
   * Listen address, host:port; port 0 picks one. Keep it on localhost, a pod
   * network or a private network: grpc-js-xds clients reach it only in
   * plaintext (docs/security.md). Beyond loopback, give `registrationAuth`.
   */
  address: string;
  /** JSON file with static endpoints and policy, watched for changes. */
  file?: string;
}

/** Starts a control plane on its own gRPC server (`zonal xds`, or embedded in `zonal serve`). */
export async function startControlPlane(options: StartControlPlaneOptions): Promise<RunningControlPlane> {
  const plane = new ControlPlane(options);
  redactGrpcLogs();
  const server = new grpc.Server();
  plane.attach(server);
  const stopWatching =
    options.file !== undefined && options.file !== ''
      ? watchControlPlaneFile(
          options.file,
          (file) => {
            plane.setStatic(file.endpoints);
            plane.setPolicy({ ...options.policy, ...file.policy });
          },
          (error) => log.error('control-plane file rejected; keeping the last good one', { error }),
        )
      : () => undefined;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const host = options.address.slice(0, options.address.lastIndexOf(':'));
  const address = `${host}:${port}`;
  log.info('xDS control plane listening', { address });
  return {
    plane,
    address,
    async stop() {
      stopWatching();
      plane.close();
      await shutdownGrpcServer(server, 1_000);
    },
  };
}
