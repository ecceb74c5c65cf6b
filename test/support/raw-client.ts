import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';

/**
 * A client built straight from proto/zonal/v1/dispatcher.proto, without the
 * SDK, so tests can send anything a hostile or buggy peer could.
 */
const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');

/** `exact64`: decode 64-bit integers as decimal strings, to see exactly what the dispatcher echoes. */
export function rawClient(target: string, opts: { exact64?: boolean } = {}): grpc.Client & Record<string, Function> {
  const pkg = protoLoader.loadSync('zonal/v1/dispatcher.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: false,
    longs: opts.exact64 === true ? String : Number,
    enums: String,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(pkg) as unknown as { zonal: { v1: { Dispatcher: grpc.ServiceClientConstructor } } };
  return new loaded.zonal.v1.Dispatcher(target, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
}

/** A raw Connect stream that queues inbound messages so tests can await them in order. */
export class RawStream {
  readonly call: grpc.ClientDuplexStream<Record<string, unknown>, Record<string, any>>;
  private readonly inbox: Record<string, any>[] = [];
  private readonly waiters: ((m: Record<string, any>) => void)[] = [];
  status: grpc.StatusObject | undefined;
  error: grpc.ServiceError | undefined;
  ended = false;
  private endWaiters: (() => void)[] = [];

  constructor(client: grpc.Client & Record<string, Function>) {
    this.call = client['Connect']!() as RawStream['call'];
    this.call.on('data', (m: Record<string, any>) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(m);
      else this.inbox.push(m);
    });
    this.call.on('status', (s: grpc.StatusObject) => (this.status = s));
    this.call.on('error', (e: grpc.ServiceError) => {
      this.error = e;
      this.finish();
    });
    this.call.on('end', () => this.finish());
  }

  private finish(): void {
    this.ended = true;
    for (const w of this.endWaiters.splice(0)) w();
  }

  send(message: Record<string, unknown>): void {
    this.call.write(message);
  }

  /** Next inbound message (of `kind`, skipping pings/pongs unless asked), within `timeoutMs`. */
  next(kind?: string, timeoutMs = 5_000): Promise<Record<string, any>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${kind ?? 'message'} within ${timeoutMs} ms`)), timeoutMs);
      const take = (m: Record<string, any>): boolean => {
        if (kind !== undefined && m['kind'] !== kind) return false;
        clearTimeout(timer);
        resolve(m);
        return true;
      };
      const pull = (): void => {
        while (this.inbox.length > 0) {
          const m = this.inbox.shift()!;
          if (take(m)) return;
        }
        this.waiters.push((m) => {
          if (!take(m)) pull();
        });
      };
      pull();
    });
  }

  /** Resolves when the server ended the stream (OK or error). */
  closed(timeoutMs = 5_000): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream still open after ${timeoutMs} ms`)), timeoutMs);
      this.endWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.call.cancel();
  }
}
