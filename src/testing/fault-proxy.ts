/**
 * A fault-injection TCP proxy for tests and the multi-zone demo: put it
 * between a client and a server to give the link latency, jitter, a
 * bandwidth limit, a blackhole, a pause, or connection resets.
 *
 * ```ts
 * const proxy = await FaultProxy.start({ target: server.grpcAddress, faults: { latencyMs: 20 } });
 * const producer = new ProducerClient({ target: proxy.address }); // RTT grows by 40 ms
 * proxy.setFaults({ blackhole: true });                            // the link goes dead
 * proxy.resetAll();                                                // every connection gets an RST
 * await proxy.close();
 * ```
 *
 * Why it is written here: no maintained npm package fits. Toxiproxy (and its
 * JS clients) needs its own server binary, which cannot be installed here;
 * the small npm TCP proxies forward bytes but inject no faults, or are
 * unmaintained. This needs only node:net and timers.
 *
 * Model: each connection is two independent directions (FaultPipe). A chunk
 * read from one side is delivered to the other after `latencyMs ± jitterMs`,
 * never before an earlier chunk of the same direction, and at most
 * `bandwidthBytesPerSec` fast. Changed faults apply at once to open and new
 * connections; data already in flight keeps the delivery time it was given.
 * Connection setup itself is not delayed.
 *
 * Trace name: fault-proxy (ZONAL_TRACE=fault-proxy).
 */
import * as net from 'node:net';
import { createLogger } from '../log';
import { FaultPipe } from './fault-proxy-pipe';

const log = createLogger('fault-proxy');

export interface Faults {
  /** One-way delay added in each direction, so a round trip grows by 2 × latencyMs. */
  latencyMs: number;
  /** Uniform ±jitterMs added to each chunk's delay; never reorders bytes within a direction. */
  jitterMs: number;
  /** Per direction, per connection; 0 = unlimited. */
  bandwidthBytesPerSec: number;
  /**
   * A dead link: connections are accepted and kept, but every byte read is
   * dropped (including data in flight when it is switched on). A half-close
   * is held and sent once the blackhole is lifted. Bytes lost this way are
   * gone for good, so a framed protocol (HTTP/2) on that connection is broken
   * after the blackhole lifts; it is meant to be ended by keepalive or reset.
   */
  blackhole: boolean;
  /** Forward nothing, but keep the data and deliver it in order on resume. */
  paused: boolean;
}

export const NO_FAULTS: Readonly<Faults> = Object.freeze({ latencyMs: 0, jitterMs: 0, bandwidthBytesPerSec: 0, blackhole: false, paused: false });

export interface FaultProxyOptions {
  /** host:port to listen on; default 127.0.0.1:0 (any free port). */
  listen?: string;
  /** host:port every accepted connection is forwarded to. */
  target: string;
  faults?: Partial<Faults>;
  /** Returns a number in [0, 1); pinned by tests to make jitter deterministic. Default Math.random. */
  random?: () => number;
}

export interface FaultProxyStats {
  /** Connections accepted since start (including those reset at once). */
  connections: number;
  /** Connections currently proxied. */
  open: number;
  /** Bytes delivered client → target. */
  bytesUp: number;
  /** Bytes delivered target → client. */
  bytesDown: number;
  /** Bytes dropped by the blackhole, both directions. */
  bytesDropped: number;
  /** Bytes read but not delivered yet (in flight, paused, or waiting for bandwidth), both directions. */
  bytesHeld: number;
}

interface Link {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  readonly up: FaultPipe;
  readonly down: FaultPipe;
}

export class FaultProxy {
  /** host:port the proxy listens on. */
  readonly address: string;
  private faults: Faults;
  private readonly links = new Set<Link>();
  /** Every socket not yet closed, client and upstream sides; close() waits for this to empty. */
  private readonly sockets = new Set<net.Socket>();
  private socketsEmptied: (() => void) | undefined;
  private resetNewConnections = false;
  /** Set by the first close(); later calls return the same promise. */
  private closed: Promise<void> | undefined;
  private connections = 0;
  private bytesUp = 0;
  private bytesDown = 0;
  private bytesDropped = 0;

  private constructor(
    private readonly server: net.Server,
    private readonly target: HostPort,
    faults: Faults,
    private readonly random: () => number,
  ) {
    this.faults = faults;
    const bound = server.address() as net.AddressInfo;
    this.address = formatHostPort(bound.address, bound.port);
    server.on('connection', (client) => this.accept(client));
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const target = parseHostPort(options.target, 'target');
    const listen = parseHostPort(options.listen ?? '127.0.0.1:0', 'listen');
    const faults = compileFaults(NO_FAULTS, options.faults ?? {});
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: listen.host, port: listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const proxy = new FaultProxy(server, target, faults, options.random ?? Math.random);
    log.debug('listening', { address: proxy.address, target: options.target, faults });
    return proxy;
  }

  /** Changes the given faults, keeping the others; applies at once to open and new connections. */
  setFaults(faults: Partial<Faults>): void {
    this.faults = compileFaults(this.faults, faults);
    log.debug('faults', { address: this.address, faults: this.faults });
    for (const link of this.links) {
      link.up.refresh();
      link.down.refresh();
    }
  }

  getFaults(): Faults {
    return { ...this.faults };
  }

  /** Destroys every open connection with a TCP RST, on both the client and the target side. */
  resetAll(): void {
    log.debug('reset all', { address: this.address, open: this.links.size });
    for (const link of this.links) this.resetLink(link);
  }

  /** While enabled, every new connection is accepted and reset at once. */
  resetNew(enabled: boolean): void {
    this.resetNewConnections = enabled;
  }

  stats(): FaultProxyStats {
    let bytesHeld = 0;
    for (const link of this.links) bytesHeld += link.up.held + link.down.held;
    return {
      connections: this.connections,
      open: this.links.size,
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      bytesDropped: this.bytesDropped,
      bytesHeld,
    };
  }

  /** Stops listening and destroys every connection; resolves when no socket, server or timer is left. */
  close(): Promise<void> {
    this.closed ??= this.shutDown();
    return this.closed;
  }

  private async shutDown(): Promise<void> {
    log.debug('closing', { address: this.address, open: this.links.size });
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const link of this.links) {
      link.up.close();
      link.down.close();
    }
    const socketsClosed =
      this.sockets.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.socketsEmptied = resolve));
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([serverClosed, socketsClosed]);
    // The server emits 'close' before libuv has closed its handle (that happens in a later close-callbacks
    // phase); two turns of the loop make sure it is gone when close() resolves.
    for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
  }

  private accept(client: net.Socket): void {
    this.connections++;
    this.track(client);
    client.on('error', () => undefined); // The link's handler below decides; a reset-at-once socket has none.
    if (this.closed !== undefined) {
      client.destroy();
      return;
    }
    if (this.resetNewConnections) {
      log.debug('reset new connection', { address: this.address });
      resetSocket(client);
      return;
    }
    const upstream = net.connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true });
    this.track(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const faults = (): Faults => this.faults;
    const up = new FaultPipe(client, upstream, faults, this.random, {
      forwarded: (n) => (this.bytesUp += n),
      dropped: (n) => (this.bytesDropped += n),
    });
    const down = new FaultPipe(upstream, client, faults, this.random, {
      forwarded: (n) => (this.bytesDown += n),
      dropped: (n) => (this.bytesDropped += n),
    });
    const link: Link = { client, upstream, up, down };
    this.links.add(link);
    let upstreamConnected = false;
    upstream.once('connect', () => (upstreamConnected = true));

    const onError = (from: net.Socket, err: NodeJS.ErrnoException): void => {
      log.debug('socket error', { address: this.address, side: from === client ? 'client' : 'target', code: err.code });
      up.close();
      down.close();
      const other = from === client ? upstream : client;
      // Mirror a reset (or a target that refuses the connection) as a reset; anything else as a plain close.
      if (err.code === 'ECONNRESET' || (from === upstream && !upstreamConnected)) resetSocket(other);
      else other.destroy();
    };
    client.on('error', (err) => onError(client, err));
    upstream.on('error', (err) => onError(upstream, err));

    // When one side is fully closed, the pipe into it is dead; the other side gets the rest of its data, an end, then is destroyed.
    let closedSides = 0;
    const onClose = (from: net.Socket): void => {
      (from === client ? down : up).close();
      (from === client ? up : down).endSource(true);
      if (++closedSides < 2) return;
      up.close();
      down.close();
      this.links.delete(link);
    };
    client.on('close', () => onClose(client));
    upstream.on('close', () => onClose(upstream));
  }

  private resetLink(link: Link): void {
    link.up.close();
    link.down.close();
    resetSocket(link.client);
    resetSocket(link.upstream);
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      if (this.sockets.size === 0 && this.socketsEmptied !== undefined) {
        const resolve = this.socketsEmptied;
        this.socketsEmptied = undefined;
        resolve();
      }
    });
  }
}

/**
 * Sends an RST and destroys; a socket that cannot (already closed, not TCP,
 * still connecting, or already ended) is destroyed plainly. Node's reset of a
 * socket whose end() was called fails in libuv (EINVAL: a shutdown is
 * pending), and the socket then never emits 'close' and keeps its descriptor:
 * close() would wait for it forever (seen in the soak's teardown).
 */
function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || socket.writableEnded) {
    socket.destroy();
    return;
  }
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

function compileFaults(base: Faults, patch: Partial<Faults>): Faults {
  const faults = { ...base, ...patch };
  for (const key of ['latencyMs', 'jitterMs', 'bandwidthBytesPerSec'] as const) {
    const value = faults[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`fault ${key} must be a finite number >= 0, got ${String(value)}`);
    }
  }
  for (const key of ['blackhole', 'paused'] as const) {
    if (typeof faults[key] !== 'boolean') throw new TypeError(`fault ${key} must be a boolean, got ${String(faults[key])}`);
  }
  return faults;
}

interface HostPort {
  host: string;
  port: number;
}

/** Parses host:port, with IPv6 hosts in brackets ([::1]:50051). */
function parseHostPort(value: string, what: string): HostPort {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:]+):(\d+)$/.exec(value);
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || match[1] === undefined || !Number.isInteger(port) || port > 65_535) {
    throw new RangeError(`${what} must be host:port, got ${JSON.stringify(value)}`);
  }
  return { host: match[1], port };
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
