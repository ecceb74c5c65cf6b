import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultProxy, type Faults } from '../../src/testing/fault-proxy';

/**
 * The fault proxy over real sockets on 127.0.0.1: an echo server behind it,
 * a client in front. Tests wait for events (data, end, error, close) or poll
 * the proxy's stats; they sleep only where a delay is what is measured.
 */

// Everything a test opens, closed after it in reverse order (clients, then proxies, then servers).
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface EchoServer {
  address: string;
  /** Bytes the server has read. */
  received(): number;
  /** Connections open at the server. */
  connections(): number;
}

async function startEcho(): Promise<EchoServer> {
  const sockets = new Set<net.Socket>();
  let received = 0;
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('data', (data) => {
      received += data.length;
      socket.write(data);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  });
  const { port } = server.address() as net.AddressInfo;
  return { address: `127.0.0.1:${port}`, received: () => received, connections: () => sockets.size };
}

async function startProxy(target: string, faults: Partial<Faults> = {}, random?: () => number): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ target, faults, ...(random ? { random } : {}) });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** A connected client that keeps everything it reads. */
class Client {
  readonly socket: net.Socket;
  private readonly chunks: Buffer[] = [];
  private length = 0;
  private waiter: { bytes: number; resolve: () => void } | undefined;
  readonly ended: Promise<void>;
  readonly closed: Promise<void>;
  readonly error: Promise<NodeJS.ErrnoException>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (data: Buffer) => {
      this.chunks.push(data);
      this.length += data.length;
      if (this.waiter !== undefined && this.length >= this.waiter.bytes) this.waiter.resolve();
    });
    this.ended = new Promise((resolve) => socket.once('end', resolve));
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.error = new Promise((resolve) => socket.once('error', resolve));
  }

  static async connect(address: string): Promise<Client> {
    const [host, port] = address.split(':');
    const socket = net.connect({ host: host!, port: Number(port) });
    socket.setNoDelay(true);
    const client = new Client(socket);
    cleanups.push(async () => {
      socket.destroy();
      await client.closed;
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return client;
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Resolves once `bytes` bytes in total have been read. */
  async until(bytes: number): Promise<Buffer> {
    if (this.length < bytes) await new Promise<void>((resolve) => (this.waiter = { bytes, resolve }));
    return this.received;
  }

  /** Writes and waits for the echo of exactly these bytes; returns the round trip in ms. */
  async roundTrip(data: Buffer): Promise<number> {
    const start = performance.now();
    const expected = this.length + data.length;
    this.socket.write(data);
    await this.until(expected);
    return performance.now() - start;
  }
}

/** Connects and resolves with the code of the first error, whether it comes during or after the handshake. */
async function connectionError(address: string): Promise<string | undefined> {
  const [host, port] = address.split(':');
  const socket = net.connect({ host: host!, port: Number(port) });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  cleanups.push(async () => {
    socket.destroy();
    await closed;
  });
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
  return err.code;
}

async function eventually(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function medianRtt(client: Client, rounds = 20): Promise<number> {
  const rtts: number[] = [];
  for (let i = 0; i < rounds; i++) rtts.push(await client.roundTrip(Buffer.from([i])));
  return median(rtts);
}

/** `count` 4-byte big-endian sequence numbers, one write each. */
function writeNumbered(socket: net.Socket, count: number): void {
  for (let i = 0; i < count; i++) {
    const message = Buffer.alloc(4);
    message.writeUInt32BE(i);
    socket.write(message);
  }
}

function expectNumbered(data: Buffer, count: number): void {
  expect(data.length).toBe(count * 4);
  const numbers = Array.from({ length: count }, (_, i) => data.readUInt32BE(i * 4));
  expect(numbers).toEqual(Array.from({ length: count }, (_, i) => i));
}

describe('FaultProxy', () => {
  describe('forwarding', () => {
    it('passes bytes through unchanged, 5 MB byte-exact, and counts them', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address);
      expect(proxy.address).toMatch(/^127\.0\.0\.1:\d+$/);
      const client = await Client.connect(proxy.address);

      await client.roundTrip(Buffer.from('hello'));
      expect(client.received.toString()).toBe('hello');

      const big = randomBytes(5 * 1024 * 1024);
      client.socket.write(big);
      const echoed = await client.until(5 + big.length);
      expect(echoed.subarray(5).equals(big)).toBe(true);
      expect(proxy.stats()).toMatchObject({ connections: 1, open: 1, bytesUp: 5 + big.length, bytesDown: 5 + big.length, bytesDropped: 0, bytesHeld: 0 });
    });

    it('mirrors a half-close and forgets the connection once both sides are closed', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address, { latencyMs: 5 });
      const client = await Client.connect(proxy.address);
      client.socket.end('bye');
      await client.ended;
      expect(client.received.toString()).toBe('bye');
      await client.closed;
      await eventually(() => proxy.stats().open === 0, 'the proxy to drop the link');
      expect(proxy.stats()).toMatchObject({ connections: 1, open: 0, bytesUp: 3, bytesDown: 3 });
    });

    it('rejects bad addresses and fault values', async () => {
      await expect(FaultProxy.start({ target: 'no-port' })).rejects.toThrow(/target must be host:port/);
      const echo = await startEcho();
      const proxy = await startProxy(echo.address);
      expect(() => proxy.setFaults({ latencyMs: -1 })).toThrow(RangeError);
      expect(() => proxy.setFaults({ bandwidthBytesPerSec: Number.NaN })).toThrow(RangeError);
      expect(proxy.getFaults()).toEqual({ latencyMs: 0, jitterMs: 0, bandwidthBytesPerSec: 0, blackhole: false, paused: false });
    });
  });

  describe('latency and jitter', () => {
    it('adds about 2 × latency to an echo round trip', async () => {
      const latencyMs = 20;
      const echo = await startEcho();
      const proxy = await startProxy(echo.address, { latencyMs });
      const client = await Client.connect(proxy.address);
      const rtt = await medianRtt(client);
      expect(rtt).toBeGreaterThanOrEqual(2 * latencyMs - 2);
      expect(rtt).toBeLessThan(2 * latencyMs + 60);
    });

    it('applies changed faults to an open connection at once', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address);
      const client = await Client.connect(proxy.address);
      expect(await medianRtt(client, 5)).toBeLessThan(20);
      proxy.setFaults({ latencyMs: 15 });
      expect(await medianRtt(client, 5)).toBeGreaterThanOrEqual(2 * 15 - 2);
    });

    it('draws jitter from the injected random: at its top it adds to the latency', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address, { latencyMs: 10, jitterMs: 10 }, () => 0.9999);
      const client = await Client.connect(proxy.address);
      expect(await medianRtt(client, 5)).toBeGreaterThanOrEqual(2 * 20 - 2);
    });

    it('never reorders bytes within a direction, even when jitter would', async () => {
      // Alternating extremes: without the ordering rule every second chunk would overtake the one before.
      let calls = 0;
      const random = (): number => (calls++ % 2 === 0 ? 0.9999 : 0);
      const echo = await startEcho();
      const proxy = await startProxy(echo.address, { latencyMs: 5, jitterMs: 5 }, random);
      const client = await Client.connect(proxy.address);
      writeNumbered(client.socket, 500);
      expectNumbered(await client.until(500 * 4), 500);
      expect(calls).toBeGreaterThan(2); // jitter was drawn per chunk, in both directions
    });
  });

  describe('bandwidth', () => {
    it('limits each direction: 50 KB at 100 KB/s takes at least 0.4 s', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address, { bandwidthBytesPerSec: 100_000 });
      const client = await Client.connect(proxy.address);
      const data = randomBytes(50_000);
      const start = performance.now();
      client.socket.write(data);
      const echoed = await client.until(data.length);
      const elapsedMs = performance.now() - start;
      expect(echoed.equals(data)).toBe(true);
      expect(elapsedMs).toBeGreaterThanOrEqual(400);
      expect(elapsedMs).toBeLessThan(3_000);
    });
  });

  describe('blackhole', () => {
    it('accepts and keeps connections but drops every byte, like a dead link', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address, { blackhole: true });
      const client = await Client.connect(proxy.address);
      client.socket.write('lost!');
      await eventually(() => proxy.stats().bytesDropped === 5, 'the proxy to drop the write');
      expect(echo.received()).toBe(0);
      expect(client.received.length).toBe(0);
      expect(proxy.stats().open).toBe(1);

      proxy.setFaults({ blackhole: false });
      await client.roundTrip(Buffer.from('ok'));
      expect(client.received.toString()).toBe('ok'); // the dropped bytes never come back
      expect(echo.received()).toBe(2);
    });

    it('drops data already in flight when it is switched on', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address, { latencyMs: 60_000 });
      const client = await Client.connect(proxy.address);
      client.socket.write('in flight');
      await eventually(() => proxy.stats().bytesHeld === 9, 'the write to be in flight');
      proxy.setFaults({ blackhole: true });
      expect(proxy.stats()).toMatchObject({ bytesHeld: 0, bytesDropped: 9 });

      proxy.setFaults({ blackhole: false, latencyMs: 0 });
      await client.roundTrip(Buffer.from('after'));
      expect(client.received.toString()).toBe('after');
      expect(echo.received()).toBe(5);
    });
  });

  describe('pause', () => {
    it('holds everything while paused and delivers it in order on resume', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address, { paused: true });
      const client = await Client.connect(proxy.address);
      writeNumbered(client.socket, 100);
      await eventually(() => proxy.stats().bytesHeld === 400, 'the proxy to hold the writes');
      expect(echo.received()).toBe(0);

      proxy.setFaults({ paused: false });
      expectNumbered(await client.until(400), 100);
      expect(echo.received()).toBe(400);
    });
  });

  describe('resets', () => {
    it('resetAll gives the client ECONNRESET and closes the target side', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address);
      const client = await Client.connect(proxy.address);
      await client.roundTrip(Buffer.from('ping'));

      proxy.resetAll();
      expect((await client.error).code).toBe('ECONNRESET');
      await client.closed;
      await eventually(() => proxy.stats().open === 0, 'the proxy to drop the link');
    });

    it('resetNew resets new connections at once and leaves open ones alone', async () => {
      const echo = await startEcho();
      const proxy = await startProxy(echo.address);
      const survivor = await Client.connect(proxy.address);
      await survivor.roundTrip(Buffer.from('a'));

      proxy.resetNew(true);
      expect(await connectionError(proxy.address)).toBe('ECONNRESET');
      await survivor.roundTrip(Buffer.from('b'));

      proxy.resetNew(false);
      const accepted = await Client.connect(proxy.address);
      await accepted.roundTrip(Buffer.from('c'));
      expect(accepted.received.toString()).toBe('c');
      expect(proxy.stats()).toMatchObject({ connections: 3, open: 2 });
    });

    it('resets the client when the target refuses the connection', async () => {
      const unused = net.createServer();
      await new Promise<void>((resolve) => unused.listen(0, '127.0.0.1', resolve));
      const { port } = unused.address() as net.AddressInfo;
      await new Promise<void>((resolve) => unused.close(() => resolve()));

      const proxy = await startProxy(`127.0.0.1:${port}`);
      expect(await connectionError(proxy.address)).toBe('ECONNRESET');
    });
  });

  describe('close', () => {
    it('leaves no socket, server or timer open', async () => {
      const countByType = (): Map<string, number> => {
        const counts = new Map<string, number>();
        for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
        return counts;
      };
      const echo = await startEcho();
      const before = countByType();

      // A long latency keeps a delivery timer pending when close() is called.
      const proxy = await FaultProxy.start({ target: echo.address, faults: { latencyMs: 60_000, jitterMs: 10 } });
      const client = await Client.connect(proxy.address);
      client.socket.write('never delivered');
      await eventually(() => proxy.stats().bytesHeld > 0 && echo.connections() === 1, 'a delivery to be pending');
      const during = countByType();
      // (Timers are not compared here: the test runner's own timers come and go.)
      expect(during.get('TCPServerWrap') ?? 0).toBeGreaterThan(before.get('TCPServerWrap') ?? 0);
      expect(during.get('TCPSocketWrap') ?? 0).toBeGreaterThan(before.get('TCPSocketWrap') ?? 0);

      await proxy.close();
      await proxy.close(); // idempotent
      expect(proxy.stats().open).toBe(0);
      await client.closed; // the proxy closed the client's connection...
      await eventually(() => echo.connections() === 0, 'the echo server to see its connection close'); // ...and the target's

      const after = countByType();
      for (const [type, count] of after) expect({ type, count }).toEqual({ type, count: Math.min(count, before.get(type) ?? 0) });
    });
  });

  describe('gRPC', () => {
    it('carries a unary call, with the latency on top', async () => {
      const identity = (b: Buffer): Buffer => b;
      const definition: grpc.ServiceDefinition = {
        echo: {
          path: '/fault.proxy.test.Echo/Echo',
          requestStream: false,
          responseStream: false,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
      };
      const server = new grpc.Server();
      server.addService(definition, {
        echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
      });
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
      );
      cleanups.push(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));

      const proxy = await startProxy(`127.0.0.1:${port}`, { latencyMs: 10 });
      const EchoClient = grpc.makeGenericClientConstructor(definition, 'Echo');
      const client = new EchoClient(proxy.address, grpc.credentials.createInsecure());
      cleanups.push(async () => client.close());
      const unary = (payload: string): Promise<Buffer> =>
        new Promise((resolve, reject) =>
          client.makeUnaryRequest('/fault.proxy.test.Echo/Echo', identity, identity, Buffer.from(payload), (err, reply) =>
            err ? reject(err) : resolve(reply!),
          ),
        );

      for (const payload of ['first, with connection setup', 'second, on the open connection']) {
        const start = performance.now();
        const reply = await unary(payload);
        expect(performance.now() - start).toBeGreaterThanOrEqual(20);
        expect(reply.toString()).toBe(payload);
      }
      expect(proxy.stats().open).toBe(1);
    });
  });
});
