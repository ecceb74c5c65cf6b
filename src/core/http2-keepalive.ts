/**
 * HTTP/2 keepalive (PING frames) between SDK channels and the dispatcher,
 * from one config, so the client side and the server's ping policy always
 * agree. Pure; the adapters turn it into grpc-js options.
 *
 * In-band heartbeats (keepalive-policy.ts) carry liveness: proxies answer
 * PINGs themselves and drop streams without DATA, so PINGs only guard the
 * TCP connection between the SDK and whatever terminates its HTTP/2 (the
 * dispatcher, or an Envoy/LB in front of it).
 */
export interface Http2KeepaliveConfig {
  /** Client PING interval on a connection with calls; 0 turns client PINGs off. */
  clientKeepaliveTimeMs: number;
  /** The connection is dropped when a PING is not answered within this. */
  clientKeepaliveTimeoutMs: number;
  /** Whether the client also pings a connection with no active call. */
  clientPermitWithoutCalls: boolean;
  /**
   * The ping policy of the HTTP/2 server the client talks to: the shortest
   * interval between PINGs it tolerates before it answers GOAWAY
   * ENHANCE_YOUR_CALM "too_many_pings" (grpc-core and grpc-go default to
   * 5 minutes; set this to what the dispatcher or the proxy in front enforces).
   */
  serverMinPingIntervalMs: number;
  /** Whether that server tolerates PINGs on connections without calls. */
  serverPermitWithoutCalls: boolean;
}

export const HTTP2_KEEPALIVE_DEFAULTS: Http2KeepaliveConfig = {
  clientKeepaliveTimeMs: 30_000,
  clientKeepaliveTimeoutMs: 10_000,
  clientPermitWithoutCalls: false,
  serverMinPingIntervalMs: 20_000,
  serverPermitWithoutCalls: false,
};

/** Refuses every combination that would make the server answer too_many_pings. */
export function validateHttp2Keepalive(c: Http2KeepaliveConfig): void {
  if (!Number.isInteger(c.clientKeepaliveTimeMs) || c.clientKeepaliveTimeMs < 0) throw new RangeError('http2.clientKeepaliveTimeMs must be a whole number >= 0');
  if (!Number.isInteger(c.clientKeepaliveTimeoutMs) || c.clientKeepaliveTimeoutMs < 1) throw new RangeError('http2.clientKeepaliveTimeoutMs must be a whole number >= 1');
  if (!Number.isInteger(c.serverMinPingIntervalMs) || c.serverMinPingIntervalMs < 0) throw new RangeError('http2.serverMinPingIntervalMs must be a whole number >= 0');
  if (c.clientKeepaliveTimeMs === 0) return;
  if (c.clientKeepaliveTimeMs < c.serverMinPingIntervalMs) {
    throw new RangeError(
      `http2.clientKeepaliveTimeMs (${c.clientKeepaliveTimeMs}) is below the server's minimum ping interval (${c.serverMinPingIntervalMs}): the server would answer GOAWAY too_many_pings; raise clientKeepaliveTimeMs or lower serverMinPingIntervalMs where the server allows it`,
    );
  }
  if (c.clientPermitWithoutCalls && !c.serverPermitWithoutCalls) {
    throw new RangeError('http2.clientPermitWithoutCalls is on but the server does not permit pings without calls: it would answer too_many_pings');
  }
}

/** grpc-js channel options for SDK clients. */
export function clientKeepaliveOptions(c: Http2KeepaliveConfig): Record<string, number> {
  if (c.clientKeepaliveTimeMs === 0) return {};
  return {
    'grpc.keepalive_time_ms': c.clientKeepaliveTimeMs,
    'grpc.keepalive_timeout_ms': c.clientKeepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': c.clientPermitWithoutCalls ? 1 : 0,
  };
}

/**
 * grpc-js server options that state the same policy. The dispatcher itself
 * sends no HTTP/2 PINGs (in-band heartbeats do that job).
 */
export function serverKeepaliveOptions(c: Http2KeepaliveConfig): Record<string, number> {
  return {
    'grpc.http2.min_ping_interval_without_data_ms': c.serverMinPingIntervalMs,
    'grpc.keepalive_permit_without_calls': c.serverPermitWithoutCalls ? 1 : 0,
  };
}
