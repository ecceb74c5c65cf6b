import * as grpc from '@grpc/grpc-js';
import { serverKeepaliveOptions, type Http2KeepaliveConfig } from '../core/http2-keepalive';
import { shutdownGrpcServer } from '../protocol/grpc-shutdown';
import { dispatcherService } from '../protocol/service';
import type { AccessGuard } from '../security/access-guard';
import type { Dispatcher } from './dispatcher';
import { dispatcherHandlers } from './grpc-service';
import { redactGrpcLogs } from '../security/grpc-log-redaction';

export interface GrpcServiceOptions {
  /** host:port; port 0 picks a free one. */
  address: string;
  maxMessageBytes: number;
  http2Keepalive: Http2KeepaliveConfig;
  helloTimeoutMs: number;
  /** TLS or mTLS (src/security/tls-files.ts); plaintext when absent. */
  credentials?: grpc.ServerCredentials;
  /** The access policy's enforcement; every caller may do everything when absent. */
  guard?: AccessGuard;
}

export interface RunningGrpcService {
  /** host:port it listens on (the real port when 0 was asked). */
  readonly address: string;
  stop(): Promise<void>;
}

/** Serves zonal.v1.Dispatcher for `dispatcher` on a gRPC server of its own. */
export async function startGrpcService(dispatcher: Dispatcher, options: GrpcServiceOptions): Promise<RunningGrpcService> {
  redactGrpcLogs();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes,
    'grpc.max_send_message_length': options.maxMessageBytes,
    ...serverKeepaliveOptions(options.http2Keepalive),
  });
  const { handlers, endWatches } = dispatcherHandlers(dispatcher, options.helloTimeoutMs, options.guard);
  server.addService(dispatcherService().definition, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.address, options.credentials ?? grpc.ServerCredentials.createInsecure(), (err, boundPort) => (err ? reject(err) : resolve(boundPort)));
  });
  const host = options.address.slice(0, options.address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return {
    address: `${host}:${port}`,
    stop: () => {
      // Watches never end by themselves: end them as UNAVAILABLE (retry elsewhere), not cancelled by the forced shutdown.
      endWatches();
      return shutdownGrpcServer(server, 2_000);
    },
  };
}
