import * as grpc from '@grpc/grpc-js';
import { dispatcherService } from '../protocol/service';
import { deadlineIn } from './call-policy';
import { ZonalError } from '../errors';
import { clientKeepaliveOptions, HTTP2_KEEPALIVE_DEFAULTS, validateHttp2Keepalive, type Http2KeepaliveConfig } from '../core/http2-keepalive';
import { TOKEN_PATTERN } from '../security/token';
import { channelCredentials, TlsFileProvider } from '../security/tls-files';

/**
 * How the SDK proves who it is and checks the dispatcher (docs/security.md).
 * Without `tls` the channel is plaintext; a token is then sent in the clear,
 * so keep that to loopback.
 */
export interface ClientSecurityOptions {
  /**
   * TLS to the dispatcher. `caFile` verifies it (the system's roots when
   * absent); `certFile` and `keyFile` present a client certificate (mutual
   * TLS). The files are re-read when they change (`reloadMs`, default 5000).
   * `serverName` is the name the dispatcher's certificate must carry, when it
   * is not the target's host (an xds:/// target's name is the listener's).
   */
  tls?: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string; reloadMs?: number };
  /** A bearer token, sent as "authorization: Bearer <token>" on every call; a function is asked at each call (a rotated token). */
  token?: string | (() => string);
}

/** Adds the bearer token to every call's metadata. */
function tokenInterceptor(token: () => string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token()}`);
        next(metadata, listener);
      },
    });
}

function checkToken(token: string): string {
  if (!TOKEN_PATTERN.test(token)) throw new ZonalError('INVALID_ARGUMENT', 'token must be 16 to 4096 visible ASCII characters (no spaces or line breaks)');
  return token;
}

let xdsRegistered = false;

/**
 * Registers the xds: resolver on first use: loading @grpc/grpc-js-xds costs
 * 0.5-0.9 s and about 70 MB, which clients of plain targets never pay. The
 * bootstrap comes from GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG.
 */
function ensureXdsResolver(): void {
  if (xdsRegistered) return;
  if (process.env['GRPC_XDS_BOOTSTRAP'] === undefined && process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] === undefined) {
    throw new ZonalError(
      'INVALID_ARGUMENT',
      'an xds:/// target needs an xDS bootstrap: set GRPC_XDS_BOOTSTRAP to a file written by `zonal bootstrap --zone Z --xds HOST:PORT`, or GRPC_XDS_BOOTSTRAP_CONFIG to its JSON',
    );
  }
  (require('@grpc/grpc-js-xds') as { register(): void }).register();
  xdsRegistered = true;
}

/**
 * A zonal.v1.Dispatcher client for `target`: `xds:///listener` (zone-aware,
 * through the control plane), `dns:///host:port` or `host:port`.
 */
export function createDispatcherClient(target: string, channelOptions: grpc.ChannelOptions = {}, http2: Partial<Http2KeepaliveConfig> = {}, security: ClientSecurityOptions = {}): grpc.Client {
  const keepalive = { ...HTTP2_KEEPALIVE_DEFAULTS, ...http2 };
  validateHttp2Keepalive(keepalive);
  if (target.startsWith('xds:')) ensureXdsResolver();
  const Client = dispatcherService().client;
  const { tls, token } = security;
  let provider: TlsFileProvider | undefined;
  if (tls !== undefined && (tls.caFile !== undefined || tls.certFile !== undefined || tls.keyFile !== undefined)) {
    try {
      provider = new TlsFileProvider(tls, tls.reloadMs ?? 5_000);
    } catch (err) {
      throw new ZonalError('INVALID_ARGUMENT', `tls: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const credentials = tls !== undefined ? channelCredentials(provider) : grpc.credentials.createInsecure();
  const readToken = typeof token === 'function' ? () => checkToken(token()) : token !== undefined ? ((t) => () => t)(checkToken(token)) : undefined;
  const client = new Client(target, credentials, {
    ...(readToken !== undefined ? { interceptors: [tokenInterceptor(readToken)] } : {}),
    ...(tls?.serverName !== undefined ? { 'grpc.ssl_target_name_override': tls.serverName } : {}),
    ...clientKeepaliveOptions(keepalive),
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    // A dispatcher that restarts should get traffic back in seconds, not after a 2-minute backoff.
    'grpc.initial_reconnect_backoff_ms': 250,
    'grpc.max_reconnect_backoff_ms': 5_000,
    ...channelOptions,
  });
  if (provider !== undefined) {
    // The file polls end with the client.
    const close = client.close.bind(client);
    client.close = () => {
      provider.close();
      close();
    };
  }
  return client;
}

/** Connects and waits for READY (warm-up), so the first call does not pay for the handshake. */
export function waitForReady(client: grpc.Client, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(deadlineIn(deadlineMs), (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * Runs the (de)serializers of `method` once on representative requests and
 * responses. protobufjs generates each message type's encoder and decoder on
 * the first message of that type, nested types included: in a fresh process
 * that took about 1.5 ms each way inside the first call (and the first task
 * of a worker). Warming them with messages that set every nested type (a
 * task, a result with an error) moves that cost out of the first call. No I/O.
 */
export function warmCodec(method: string, requests: readonly unknown[], responses: readonly unknown[]): void {
  const definition = dispatcherService().client.service[method];
  if (definition === undefined) return;
  for (const request of requests) definition.requestSerialize(request);
  for (const response of responses) definition.responseDeserialize(definition.responseSerialize(response));
}
