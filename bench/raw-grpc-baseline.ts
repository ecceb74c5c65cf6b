import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';

/** Unary calls per second of a bare grpc-js echo service on loopback: the baseline. */
export async function rawUnaryBaseline(calls: number, inFlight: number): Promise<number> {
  const service: grpc.ServiceDefinition = {
    Echo: {
      path: '/bench.Echo/Echo',
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  };
  const server = new grpc.Server();
  server.addService(service, { Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const Client = grpc.makeGenericClientConstructor(service, 'Echo');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Echo(req: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void): void;
  };
  const payload = Buffer.from('task-payload-0000');
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < calls) {
        await new Promise<void>((resolve, reject) => client.Echo(payload, (e) => (e ? reject(e) : resolve())));
      }
    }),
  );
  const perSec = calls / ((performance.now() - t0) / 1000);
  client.close();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  return perSec;
}
