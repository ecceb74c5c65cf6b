import { describe, expect, it } from 'vitest';
import { clientKeepaliveOptions, HTTP2_KEEPALIVE_DEFAULTS, serverKeepaliveOptions, validateHttp2Keepalive } from '../../src/core/http2-keepalive';
import { ProducerClient } from '../../src/client/producer-client';
import { compileServerOptions } from '../../src/app/server-options';

describe('HTTP/2 keepalive agreement', () => {
  it('the defaults agree: the client pings no faster than the server tolerates, and only with calls', () => {
    expect(() => validateHttp2Keepalive(HTTP2_KEEPALIVE_DEFAULTS)).not.toThrow();
    expect(clientKeepaliveOptions(HTTP2_KEEPALIVE_DEFAULTS)).toEqual({
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 0,
    });
    expect(serverKeepaliveOptions(HTTP2_KEEPALIVE_DEFAULTS)).toEqual({
      'grpc.http2.min_ping_interval_without_data_ms': 20_000,
      'grpc.keepalive_permit_without_calls': 0,
    });
  });

  it('refuses a client ping interval below the server minimum (too_many_pings), naming both', () => {
    expect(() => validateHttp2Keepalive({ ...HTTP2_KEEPALIVE_DEFAULTS, clientKeepaliveTimeMs: 10_000 })).toThrow(
      /clientKeepaliveTimeMs \(10000\) is below the server's minimum ping interval \(20000\).*too_many_pings/,
    );
  });

  it('refuses pings without calls when the server does not permit them', () => {
    expect(() => validateHttp2Keepalive({ ...HTTP2_KEEPALIVE_DEFAULTS, clientPermitWithoutCalls: true })).toThrow(/does not permit pings without calls/);
    expect(() => validateHttp2Keepalive({ ...HTTP2_KEEPALIVE_DEFAULTS, clientPermitWithoutCalls: true, serverPermitWithoutCalls: true })).not.toThrow();
  });

  it('client PINGs can be turned off, and then nothing is set', () => {
    const off = { ...HTTP2_KEEPALIVE_DEFAULTS, clientKeepaliveTimeMs: 0, serverMinPingIntervalMs: 300_000 };
    expect(() => validateHttp2Keepalive(off)).not.toThrow();
    expect(clientKeepaliveOptions(off)).toEqual({});
  });

  it('the SDK and the server refuse such a combination when they are created', () => {
    expect(() => new ProducerClient({ target: '127.0.0.1:1', http2Keepalive: { clientKeepaliveTimeMs: 1_000 } })).toThrow(/too_many_pings/);
    expect(() => compileServerOptions({ http2Keepalive: { clientKeepaliveTimeMs: 5_000, serverMinPingIntervalMs: 10_000 } })).toThrow(/too_many_pings/);
  });
});
