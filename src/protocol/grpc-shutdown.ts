import type * as grpc from '@grpc/grpc-js';

/**
 * Stops a grpc-js server: lets open calls finish, and forces the rest after
 * `forceAfterMs` (long-lived streams such as ADS never finish by themselves).
 */
export function shutdownGrpcServer(server: grpc.Server, forceAfterMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, forceAfterMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}
