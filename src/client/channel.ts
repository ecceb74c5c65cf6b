import * as grpc from '@grpc/grpc-js';
import { dispatcherService } from '../protocol/service';
import { deadlineIn } from './call-policy';
import { ZonalError } from '../errors';
import { clientKeepaliveOptions, HTTP2_KEEPALIVE_DEFAULTS, validateHttp2Keepalive, type Http2KeepaliveConfig } from '../core/http2-keepalive';

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
export function createDispatcherClient(target: string, channelOptions: grpc.ChannelOptions = {}, http2: Partial<Http2KeepaliveConfig> = {}): grpc.Client {
  const keepalive = { ...HTTP2_KEEPALIVE_DEFAULTS, ...http2 };
  validateHttp2Keepalive(keepalive);
  if (target.startsWith('xds:')) ensureXdsResolver();
  const Client = dispatcherService().client;
  return new Client(target, grpc.credentials.createInsecure(), {
    ...clientKeepaliveOptions(keepalive),
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    // A dispatcher that restarts should get traffic back in seconds, not after a 2-minute backoff.
    'grpc.initial_reconnect_backoff_ms': 250,
    'grpc.max_reconnect_backoff_ms': 5_000,
    ...channelOptions,
  });
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
