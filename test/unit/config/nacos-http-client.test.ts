import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_DOCUMENT_BYTES } from '../../../src/config/document-text';
import { NacosHttpClient } from '../../../src/config/nacos-http-client';
import type { BackoffPolicy } from '../../../src/core/backoff';

/**
 * These tests use a real HTTP server on 127.0.0.1 (port 0): the client is
 * the transport, so a socket is what it must be tested against.
 */

const FAST_BACKOFF: BackoffPolicy = { initialMs: 1, multiplier: 2, maxMs: 10, jitter: 0 };

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface TestServer {
  url: string;
  port: number;
  seen: Seen[];
  server: http.Server;
  close(): Promise<void>;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void;

async function startServer(handler: Handler): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      handler(req, res, seen.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on: bound once, then released. */
async function refusedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function countResources(kinds: readonly string[]): Record<string, number> {
  const info = process.getActiveResourcesInfo();
  return Object.fromEntries(kinds.map((kind) => [kind, info.filter((r) => r === kind).length]));
}

/** Resolves to 'pending' if `promise` has not settled once every queued microtask has run. */
function settledNow<T>(promise: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([promise, new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')))]);
}

describe('NacosHttpClient', () => {
  const servers: TestServer[] = [];
  const clients: NacosHttpClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const server of servers.splice(0)) await server.close();
  });

  async function serve(handler: Handler): Promise<TestServer> {
    const server = await startServer(handler);
    servers.push(server);
    return server;
  }

  function client(...args: ConstructorParameters<typeof NacosHttpClient>): NacosHttpClient {
    const c = new NacosHttpClient(...args);
    clients.push(c);
    return c;
  }

  it('paces long polls that come back quickly, whatever they say, and stops pacing after one that was held', async () => {
    let clockMs = 0;
    let holdNext = false;
    const server = await serve((_req, res) => {
      // A held poll: the clock moves past quickMs while the server holds it.
      if (holdNext) clockMs += 5_000;
      holdNext = false;
      res.writeHead(200).end('');
    });
    const waits: number[] = [];
    // random 1 with jitter 0.5: each wait is its full delay, so the sequence is exact.
    const c = client(undefined, FAST_BACKOFF, () => 1, { backoff: { initialMs: 8, multiplier: 2, maxMs: 32, jitter: 0.5 }, quickMs: 1_000, nowMs: () => clockMs });
    const poll = async (): Promise<void> => {
      const before = performance.now();
      await c.request(`${server.url}/nacos/v1/cs/configs/listener`, { method: 'POST' });
      waits.push(performance.now() - before);
    };
    for (let i = 0; i < 5; i++) await poll();
    // Polls 2..5 each waited first (8, 16, 32, 32 ms): four pacing waits.
    expect(c.stats.pollPacingWaits).toBe(4);
    expect(waits[4]).toBeGreaterThanOrEqual(30);
    // A poll that is held ends the pacing.
    holdNext = true;
    await c.request(`${server.url}/nacos/v1/cs/configs/listener`, { method: 'POST' });
    const pacedBefore = c.stats.pollPacingWaits;
    await poll();
    expect(c.stats.pollPacingWaits).toBe(pacedBefore);
    // Other requests (GET of the config) are never paced.
    await c.request(`${server.url}/nacos/v1/cs/configs`);
    expect(c.stats.pollPacingWaits).toBe(pacedBefore);
  });

  it('reads an answer only up to one byte more than the largest document, however large it is', async () => {
    // 64 MiB, sent lazily: the client must stop reading long before the end.
    let sent = 0;
    const server = await serve((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const more = (): void => {
        while (sent < 64 * 1024 * 1024 && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('close', () => undefined);
      more();
    });
    const c = client(undefined, FAST_BACKOFF);
    const response = await c.request(`${server.url}/nacos/v1/cs/configs`);
    expect(response.status).toBe(200);
    expect(Buffer.byteLength(response.data)).toBe(MAX_DOCUMENT_BYTES + 1);
    expect(sent).toBeLessThan(64 * 1024 * 1024);
    expect(c.inFlight).toBe(0);
  });

  it('retries 5xx answers with backoff until Nacos answers, telling onFailure each time', async () => {
    const server = await serve((_req, res, n) => {
      if (n <= 3) res.writeHead(500).end('busy');
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('version: 1\n');
    });
    const failures: [string, number][] = [];
    const c = client((error, consecutive) => failures.push([error.message, consecutive]), FAST_BACKOFF);

    const response = await c.request(`${server.url}/nacos/v1/cs/configs`);

    expect(response.status).toBe(200);
    expect(response.data).toBe('version: 1\n');
    expect(response.headers['content-type']).toBe('text/plain');
    expect(c.stats).toEqual({ requests: 4, failures: 3, backoffWaits: 3, pollPacingWaits: 0 });
    expect(failures).toEqual([
      ['Nacos answered 500: busy', 1],
      ['Nacos answered 500: busy', 2],
      ['Nacos answered 500: busy', 3],
    ]);
    expect(server.seen).toHaveLength(4);
    expect(c.inFlight).toBe(0);
  });

  it('the consecutive count starts again after a success', async () => {
    const server = await serve((_req, res, n) => res.writeHead(n === 1 || n === 3 ? 503 : 200).end(''));
    const counts: number[] = [];
    const c = client((_e, consecutive) => counts.push(consecutive), FAST_BACKOFF);
    await c.request(server.url);
    await c.request(server.url);
    expect(counts).toEqual([1, 1]);
  });

  it('returns 4xx answers as they are, without retrying, but the next request after a 403 waits its backoff', async () => {
    const server = await serve((_req, res) => res.writeHead(403).end('unknown user'));
    const failures: Error[] = [];
    const c = client((e) => failures.push(e), FAST_BACKOFF);
    const response = await c.request(`${server.url}/nacos/v1/cs/configs`);
    expect(response).toMatchObject({ status: 403, data: 'unknown user' });
    expect(server.seen).toHaveLength(1);
    expect(failures.map((e) => e.message)).toEqual(['Nacos answered 403: unknown user']);
    // The nacos agent repeats a 403 in its loop at once: here the repeat waits.
    await c.request(`${server.url}/nacos/v1/cs/configs`);
    expect(c.stats).toEqual({ requests: 2, failures: 2, backoffWaits: 1, pollPacingWaits: 0 });
  });

  it('a 404 (no such config) is an answer: no backoff after it', async () => {
    const server = await serve((_req, res) => res.writeHead(404).end('config data not exist'));
    const c = client(() => {}, FAST_BACKOFF);
    expect(await c.request(`${server.url}/nacos/v1/cs/configs`)).toMatchObject({ status: 404 });
    await c.request(`${server.url}/nacos/v1/cs/configs`);
    expect(c.stats).toEqual({ requests: 2, failures: 0, backoffWaits: 0, pollPacingWaits: 0 });
  });

  it('a request that times out is retried', async () => {
    const server = await serve((_req, res, n) => {
      if (n > 1) res.writeHead(200).end('late but fine');
      // The first request is held: the client's timeout must end it.
    });
    const failures: string[] = [];
    const c = client((e) => failures.push(e.message), FAST_BACKOFF);
    const response = await c.request(`${server.url}/nacos/v1/cs/configs`, { timeout: 50 });
    expect(response).toMatchObject({ status: 200, data: 'late but fine' });
    expect(failures).toEqual(['Nacos request timed out after 50 ms: GET /nacos/v1/cs/configs']);
  });

  it('against a refused port it keeps retrying with backoff instead of spinning, and close() ends the request', async () => {
    const port = await refusedPort();
    const failures: number[] = [];
    let secondFailure: () => void = () => undefined;
    const sawTwoFailures = new Promise<void>((resolve) => (secondFailure = resolve));
    // The production backoff (100 ms doubling to 5 s), with the jitter pinned.
    const c = client(
      (_e, consecutive) => {
        failures.push(consecutive);
        if (consecutive === 2) secondFailure();
      },
      undefined,
      () => 0.5,
    );

    const pending = c.request(`http://127.0.0.1:${port}/nacos/v1/cs/configs`);
    await sawTwoFailures; // it retries: the second attempt failed too
    expect(await settledNow(pending)).toBe('pending');

    // A rate can only be seen over time: watch a short, bounded window. The
    // backoff allows a handful of attempts in it; the nacos agent's own loop
    // (no pause) would make tens of thousands. The bound holds however slow
    // the machine is, since slowness only means fewer attempts.
    const before = c.stats.requests;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(c.stats.requests - before).toBeLessThan(15);
    expect(c.stats.requests).toBeLessThan(15);
    expect(c.stats.backoffWaits).toBeGreaterThanOrEqual(2);
    expect(failures.slice(0, 2)).toEqual([1, 2]);

    c.close();
    await expect(pending).resolves.toEqual({ status: 200, data: '', headers: {} });
    expect(c.inFlight).toBe(0);
  });

  it('close() during a held request resolves it at once with an empty 200 and leaves no timer or socket behind', async () => {
    let serverSocketClosed: () => void = () => undefined;
    const closedOnServer = new Promise<void>((resolve) => (serverSocketClosed = resolve));
    let requestArrived: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => (requestArrived = resolve));
    const server = await serve((req) => {
      // Never answers, like a 30 s long poll with nothing to report.
      req.socket.on('close', () => serverSocketClosed());
      requestArrived();
    });
    const kinds = ['Timeout', 'TCPSocketWrap'] as const;
    const before = countResources(kinds);

    const c = client(() => undefined, FAST_BACKOFF);
    const pending = c.request(`${server.url}/nacos/v1/cs/configs/listener`, { method: 'POST', timeout: 30_000, data: { 'Listening-Configs': 'zonal' } });
    await arrived;
    expect(c.inFlight).toBe(1);
    // The measure can see the request: both ends of its connection are open now.
    expect(countResources(kinds)['TCPSocketWrap']).toBeGreaterThanOrEqual((before['TCPSocketWrap'] ?? 0) + 2);

    c.close();
    expect(await settledNow(pending)).toEqual({ status: 200, data: '', headers: {} });
    expect(c.inFlight).toBe(0);

    await closedOnServer;
    // The client's socket handle goes away on its own close event: wait for it, not for time.
    const noneLeft = (): boolean => kinds.every((kind) => (countResources(kinds)[kind] ?? 0) <= (before[kind] ?? 0));
    for (let i = 0; i < 500 && !noneLeft(); i++) await new Promise((resolve) => setImmediate(resolve));
    const after = countResources(kinds);
    for (const kind of kinds) expect(after[kind], kind).toBeLessThanOrEqual(before[kind] ?? 0);
    expect(c.stats.failures).toBe(0);
  });

  it('after close() a request answers at once without touching the network', async () => {
    const server = await serve((_req, res) => res.writeHead(200).end('x'));
    const c = client(() => undefined, FAST_BACKOFF);
    c.close();
    await expect(c.request(server.url)).resolves.toEqual({ status: 200, data: '', headers: {} });
    expect(c.stats.requests).toBe(0);
    expect(server.seen).toHaveLength(0);
  });

  it('GET data goes in the query string', async () => {
    const server = await serve((_req, res) => res.writeHead(200).end('ok'));
    const c = client(() => undefined, FAST_BACKOFF);
    await c.request(`${server.url}/nacos/v1/cs/configs?accessToken=t0k`, {
      data: { dataId: 'zonal.yaml', group: 'DEFAULT_GROUP', tenant: '', skipped: undefined, nothing: null },
      headers: { 'x-zonal-test': 'yes' },
    });
    const seen = server.seen[0];
    expect(seen?.method).toBe('GET');
    const url = new URL(seen?.url ?? '', 'http://x');
    expect(url.pathname).toBe('/nacos/v1/cs/configs');
    expect([...url.searchParams]).toEqual([
      ['accessToken', 't0k'],
      ['dataId', 'zonal.yaml'],
      ['group', 'DEFAULT_GROUP'],
      ['tenant', ''],
    ]);
    expect(seen?.body).toBe('');
    expect(seen?.headers['x-zonal-test']).toBe('yes');
  });

  it('POST data goes in a form body, with nothing in the query string', async () => {
    const server = await serve((_req, res) => res.writeHead(200).end('true'));
    const c = client(() => undefined, FAST_BACKOFF);
    const content = 'version: 2\nlogLevel: warn # a & b = c\n';
    const response = await c.request(`${server.url}/nacos/v1/cs/configs`, { method: 'post', data: { dataId: 'zonal.yaml', content, retries: 3 } });
    expect(response).toMatchObject({ status: 200, data: 'true' });
    const seen = server.seen[0];
    expect(seen?.method).toBe('POST');
    expect(seen?.url).toBe('/nacos/v1/cs/configs');
    expect(seen?.headers['content-type']).toBe('application/x-www-form-urlencoded; charset=utf-8');
    expect(Object.fromEntries(new URLSearchParams(seen?.body ?? ''))).toEqual({ dataId: 'zonal.yaml', content, retries: '3' });
  });

  it('POST with dataAsQueryString puts the data in the query string', async () => {
    const server = await serve((_req, res) => res.writeHead(200).end(''));
    const c = client(() => undefined, FAST_BACKOFF);
    await c.request(`${server.url}/nacos/v1/auth/login`, { method: 'POST', data: { username: 'zonal' }, dataAsQueryString: true });
    expect(server.seen[0]?.url).toBe('/nacos/v1/auth/login?username=zonal');
    expect(server.seen[0]?.body).toBe('');
  });
});
