import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DataClient } from 'nacos';
import { afterEach, describe, expect, it } from 'vitest';
import { NacosTestServer, type NacosTestServerOptions } from '../support/nacos-test-server';
import { eventually } from '../support/server-harness';

/**
 * NacosTestServer against the real npm `nacos` client (DataClient, v1 HTTP API)
 * and against hand-written HTTP requests (fetch, raw sockets) on 127.0.0.1.
 *
 * The client's long-poll loop is not aborted by close(), and its HttpAgent
 * retries refused connections in a tight loop, so every client is closed
 * BEFORE its server stops, and the poll it still has in flight is answered
 * (releaseHeldPolls + a short hold) and observed ('pollAnswered') first.
 * Tests wait for events; they never sleep.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SEP_WORD = '\u0002';
const SEP_LINE = '\u0001';
const md5 = (s: string): string => createHash('md5').update(s, 'utf8').digest('hex');

/** The typed subset of the untyped DataClient that these tests use. */
interface Client {
  getConfig(dataId: string, group: string): Promise<string | null>;
  publishSingle(dataId: string, group: string, content: string): Promise<boolean>;
  remove(dataId: string, group: string): Promise<boolean>;
  subscribe(info: { dataId: string; group: string }, listener: (content: string | null) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  close(): void;
}

interface Change { content: string | null; at: number }

async function startServer(options: NacosTestServerOptions = {}): Promise<NacosTestServer> {
  const server = await NacosTestServer.start(options);
  cleanups.push(() => server.close());
  return server;
}

/** Resolves when a poll is held (at once if one already is). */
async function pollHeld(server: NacosTestServer): Promise<void> {
  if (server.heldPolls === 0) await once(server, 'pollHeld', { signal: AbortSignal.timeout(10_000) });
}

/**
 * A real DataClient on `server`. Cleanup (which runs before the server's) closes
 * it and, if it subscribed, waits for the server to answer its last long poll,
 * after which its loop has ended and it sends nothing more.
 */
function openClient(server: NacosTestServer, extra: Record<string, unknown> = {}) {
  const cacheDir = mkdtempSync(path.join(tmpdir(), 'nacos-cache-'));
  const client = new DataClient({ serverAddr: server.address, cacheDir, requestTimeout: 2000, ...extra } as any) as unknown as Client;
  const errors: Error[] = [];
  client.on('error', (err) => errors.push(err));
  let subscribed = false;
  cleanups.push(async () => {
    client.close();
    if (subscribed) {
      const answered = once(server, 'pollAnswered', { signal: AbortSignal.timeout(10_000) });
      server.holdMs = 50; // a poll still on its way is answered soon too
      server.releaseHeldPolls();
      await answered;
    }
    rmSync(cacheDir, { recursive: true, force: true });
  });
  /** Subscribes; `next()` resolves with the next content the listener receives. */
  function subscribe(dataId: string, group: string) {
    subscribed = true;
    const queued: Change[] = [];
    const waiting: ((change: Change) => void)[] = [];
    client.subscribe({ dataId, group }, (content) => {
      const change = { content, at: performance.now() };
      const waiter = waiting.shift();
      if (waiter) waiter(change);
      else queued.push(change);
    });
    return {
      next: (): Promise<Change> => {
        const change = queued.shift();
        return change ? Promise.resolve(change) : new Promise((resolve) => waiting.push(resolve));
      },
    };
  }
  return { client, errors, subscribe };
}

/** A raw long poll, as the client sends it. */
function listenBody(lines: string[][], extra: Record<string, string> = {}): URLSearchParams {
  return new URLSearchParams({ 'Listening-Configs': lines.map((l) => l.join(SEP_WORD) + SEP_LINE).join(''), ...extra });
}

async function poll(server: NacosTestServer, body: URLSearchParams, signal?: AbortSignal): Promise<{ status: number; keys: string[][]; ms: number }> {
  const started = performance.now();
  const res = await fetch(`http://${server.address}/nacos/v1/cs/configs/listener`, {
    method: 'POST',
    headers: { 'Long-Pulling-Timeout': '30000' },
    body,
    ...(signal ? { signal } : {}),
  });
  const text = await res.text();
  const keys = decodeURIComponent(text.trimEnd()).split(SEP_LINE).filter((l) => l !== '').map((l) => l.split(SEP_WORD));
  return { status: res.status, keys, ms: performance.now() - started };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

describe('NacosTestServer with the real nacos DataClient', () => {
  it('getConfig returns the content, and null for a missing config', async () => {
    const server = await startServer();
    server.publish('app.yaml', 'DEFAULT_GROUP', 'a: 1\nb: "zwei"\n');
    const { client, errors } = openClient(server);
    expect(await client.getConfig('app.yaml', 'DEFAULT_GROUP')).toBe('a: 1\nb: "zwei"\n');
    expect(await client.getConfig('missing.yaml', 'DEFAULT_GROUP')).toBeNull();
    expect(server.requests.get).toBe(2);
    expect(errors).toEqual([]);
  });

  it('publishSingle stores the content (form-encoded, UTF-8) and getConfig reads it back', async () => {
    const server = await startServer();
    const { client, errors } = openClient(server);
    const content = 'k=v&x=y + 100% sûr, 日本語\n\u00e9';
    expect(await client.publishSingle('pub.txt', 'G1', content)).toBe(true);
    expect(server.get('pub.txt', 'G1')).toBe(content);
    expect(await client.getConfig('pub.txt', 'G1')).toBe(content);
    expect(server.requests).toMatchObject({ publish: 1, get: 1 });
    expect(errors).toEqual([]);
  });

  it('remove deletes the config', async () => {
    const server = await startServer();
    server.publish('gone.json', 'G1', '{}');
    const { client } = openClient(server);
    expect(await client.remove('gone.json', 'G1')).toBe(true);
    expect(server.get('gone.json', 'G1')).toBeUndefined();
    expect(await client.getConfig('gone.json', 'G1')).toBeNull();
    expect(server.requests.remove).toBe(1);
  });

  it('subscribe gets the initial content, then each server.publish through the held long poll', async () => {
    const server = await startServer({ holdMs: 20_000 });
    server.publish('live.yaml', 'DEFAULT_GROUP', 'v0');
    const { subscribe, errors } = openClient(server);
    const changes = subscribe('live.yaml', 'DEFAULT_GROUP');
    expect((await changes.next()).content).toBe('v0');

    const latencies: number[] = [];
    for (let i = 1; i <= 20; i++) {
      await pollHeld(server); // the change must travel through a held poll, not a fresh one
      const answered = once(server, 'pollAnswered');
      const published = performance.now();
      server.publish('live.yaml', 'DEFAULT_GROUP', `v${i}`);
      expect(await answered).toEqual([1]); // woken with one changed key, long before the 20 s hold
      const change = await changes.next();
      expect(change.content).toBe(`v${i}`);
      latencies.push(change.at - published);
    }
    latencies.sort((a, b) => a - b);
    const fmt = (ms: number): string => `${ms.toFixed(1)} ms`;
    console.log(`[nacos-test-server] publish -> listener latency over ${latencies.length} changes: ` +
      `min ${fmt(latencies[0] ?? NaN)}, p50 ${fmt(quantile(latencies, 0.5))}, p90 ${fmt(quantile(latencies, 0.9))}, max ${fmt(latencies.at(-1) ?? NaN)}`);
    expect(quantile(latencies, 0.5)).toBeLessThan(1_000);
    expect(server.requests.listen).toBeGreaterThanOrEqual(20);
    expect(errors).toEqual([]);
  });

  it('subscribe with a namespace watches the tenant key only; publishSingle writes into the tenant', async () => {
    const server = await startServer({ holdMs: 20_000 });
    server.publish('ns.yaml', 'G1', 'tenant-v0', 'ns-a');
    server.publish('ns.yaml', 'G1', 'default-v0');
    const { client, subscribe, errors } = openClient(server, { namespace: 'ns-a' });
    const changes = subscribe('ns.yaml', 'G1');
    expect((await changes.next()).content).toBe('tenant-v0');

    await pollHeld(server);
    server.publish('ns.yaml', 'G1', 'default-v1'); // same dataId/group, other tenant: not watched
    server.publish('ns.yaml', 'G1', 'tenant-v0', 'ns-b');
    expect(server.heldPolls).toBe(1);
    const answered = once(server, 'pollAnswered');
    server.publish('ns.yaml', 'G1', 'tenant-v1', 'ns-a');
    expect(await answered).toEqual([1]);
    expect((await changes.next()).content).toBe('tenant-v1');

    expect(await client.publishSingle('written.txt', 'G1', 'from-client')).toBe(true);
    expect(server.get('written.txt', 'G1', 'ns-a')).toBe('from-client');
    expect(server.get('written.txt', 'G1')).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it('subscribe to a missing config gets null, then the content once published, then null once removed', async () => {
    const server = await startServer({ holdMs: 20_000 });
    const { client, subscribe, errors } = openClient(server);
    const changes = subscribe('later.yaml', 'G1');
    expect((await changes.next()).content).toBeNull();
    await pollHeld(server);
    server.publish('later.yaml', 'G1', 'here now');
    expect((await changes.next()).content).toBe('here now');
    await pollHeld(server);
    await client.remove('later.yaml', 'G1'); // the client's own DELETE wakes its held poll
    expect((await changes.next()).content).toBeNull();
    expect(errors).toEqual([]);
  });

  it('works with username/password when the server requires them', async () => {
    const server = await startServer({ auth: { username: 'nacos', password: 's3cret' } });
    server.publish('auth.yaml', 'G1', 'ok');
    const { client, errors } = openClient(server, { username: 'nacos', password: 's3cret' });
    expect(await client.getConfig('auth.yaml', 'G1')).toBe('ok');
    expect(await client.publishSingle('auth2.yaml', 'G1', 'ok2')).toBe(true);
    expect(await client.remove('auth2.yaml', 'G1')).toBe(true);
    expect(errors).toEqual([]);
  });
});

describe('NacosTestServer long-poll protocol (raw requests)', () => {
  it('answers at once, URL-encoded, when an MD5 differs; holds when all match', async () => {
    const server = await startServer({ holdMs: 20_000 });
    server.publish('a', 'G', 'content-a');
    server.publish('b', 'G', 'content-b', 'ns1');

    const stale = await poll(server, listenBody([['a', 'G', md5('old')], ['b', 'G', md5('content-b'), 'ns1']]));
    expect(stale.status).toBe(200);
    expect(stale.keys).toEqual([['a', 'G']]);
    expect(stale.ms).toBeLessThan(1_000);

    const tenantStale = await poll(server, listenBody([['a', 'G', md5('content-a')], ['b', 'G', '', 'ns1']]));
    expect(tenantStale.keys).toEqual([['b', 'G', 'ns1']]);

    // A config the client believes exists but is missing, and a value encoded once more (the server decodes twice).
    const twice = new URLSearchParams({ 'Listening-Configs': encodeURIComponent(`c${SEP_WORD}G${SEP_WORD}${md5('x')}${SEP_LINE}`) });
    expect((await poll(server, twice)).keys).toEqual([['c', 'G']]);
    expect(server.heldPolls).toBe(0);
    expect(server.requests.listen).toBe(3);
  });

  it('holds a matching poll until holdMs and answers it empty', async () => {
    const server = await startServer({ holdMs: 300 });
    server.publish('a', 'G', 'content-a');
    const held = poll(server, listenBody([['a', 'G', md5('content-a')], ['missing', 'G', '']]));
    await pollHeld(server);
    const result = await held;
    expect(result).toMatchObject({ status: 200, keys: [] });
    expect(result.ms).toBeGreaterThanOrEqual(290);
    expect(server.heldPolls).toBe(0);
  });

  it('wakes a held poll on publish and on remove of a watched key only', async () => {
    const server = await startServer({ holdMs: 20_000 });
    server.publish('a', 'G', 'content-a');
    const first = poll(server, listenBody([['a', 'G', md5('content-a')], ['b', 'G', '']]));
    await pollHeld(server);
    server.publish('unwatched', 'G', 'x');
    server.publish('a', 'G', 'content-a'); // same content: nothing to report
    expect(server.heldPolls).toBe(1);
    server.publish('b', 'G', 'new');
    expect((await first).keys).toEqual([['b', 'G']]);

    const second = poll(server, listenBody([['a', 'G', md5('content-a')]]));
    await pollHeld(server);
    server.remove('a', 'G');
    expect((await second).keys).toEqual([['a', 'G']]);
  });

  it('drops a held poll (and its timer) when the client disconnects', async () => {
    const server = await startServer({ holdMs: 20_000 });
    const abort = new AbortController();
    const held = poll(server, listenBody([['a', 'G', '']]), abort.signal);
    await pollHeld(server);
    const dropped = once(server, 'pollDropped');
    abort.abort();
    await expect(held).rejects.toThrow();
    await dropped;
    expect(server.heldPolls).toBe(0);
  });

  it('answers a poll without Long-Pulling-Timeout at once', async () => {
    const server = await startServer({ holdMs: 20_000 });
    const res = await fetch(`http://${server.address}/nacos/v1/cs/configs/listener`, { method: 'POST', body: listenBody([['a', 'G', '']]) });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });
});

describe('NacosTestServer lifecycle, auth and fault knobs', () => {
  it('stop() destroys held polls and clears their timers; restart() keeps the store and the port', async () => {
    const server = await startServer({ holdMs: 60_000 });
    server.publish('kept', 'G', 'before');
    const port = server.port;
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

    // Hold a poll on a raw socket (no HTTP client library timers involved).
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    const timersBefore = timers();
    const body = listenBody([['kept', 'G', md5('before')]]).toString();
    socket.write(`POST /nacos/v1/cs/configs/listener HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
      `Long-Pulling-Timeout: 30000\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await pollHeld(server);
    expect(server.openConnections).toBe(1);

    const socketClosed = once(socket, 'close');
    const started = performance.now();
    await server.stop();
    const stopMs = performance.now() - started;
    await socketClosed;
    console.log(`[nacos-test-server] stop() with a held poll took ${stopMs.toFixed(1)} ms`);
    expect(stopMs).toBeLessThan(1_000);
    expect(server.heldPolls).toBe(0);
    expect(server.openConnections).toBe(0);
    // The 60 s hold timer is gone (counted process-wide, so other tests' timers may come and go meanwhile).
    await eventually(() => timers() <= timersBefore, 5_000, 'the hold timer to be cleared');
    await server.stop(); // idempotent
    await expect(fetch(`http://${server.address}/nacos/v1/cs/configs?dataId=kept&group=G`)).rejects.toThrow();

    server.publish('kept', 'G', 'while-stopped');
    await server.restart();
    expect(server.port).toBe(port);
    const { client } = openClient(server);
    expect(await client.getConfig('kept', 'G')).toBe('while-stopped');
  });

  it('start({ port }) listens on the given port; close() is final', async () => {
    const first = await NacosTestServer.start();
    const port = first.port;
    await first.close();
    const server = await NacosTestServer.start({ port });
    expect(server.address).toBe(`127.0.0.1:${port}`);
    await server.close();
    await server.close();
    await expect(server.restart()).rejects.toThrow(/after close/);
  });

  it('rejects requests without the configured credentials with 403', async () => {
    const server = await startServer({ auth: { username: 'nacos', password: 's3cret' } });
    server.publish('a', 'G', 'secret content');
    const base = `http://${server.address}/nacos/v1/cs/configs`;
    const form = (fields: Record<string, string>) => ({ method: 'POST', body: new URLSearchParams(fields) });

    expect((await fetch(`${base}?dataId=a&group=G`)).status).toBe(403);
    expect((await fetch(`${base}?dataId=a&group=G&username=nacos&password=wrong`)).status).toBe(403);
    const ok = await fetch(`${base}?dataId=a&group=G&username=nacos&password=s3cret`);
    expect([ok.status, await ok.text()]).toEqual([200, 'secret content']);

    expect((await fetch(base, form({ dataId: 'b', group: 'G', content: 'x' }))).status).toBe(403);
    const published = await fetch(base, form({ dataId: 'b', group: 'G', content: 'x', username: 'nacos', password: 's3cret' }));
    expect([published.status, await published.text()]).toEqual([200, 'true']);
    expect((await fetch(`${base}?dataId=b&group=G`, { method: 'DELETE' })).status).toBe(403);
    expect((await fetch(`${base}/listener`, { ...form({ 'Listening-Configs': `a${SEP_WORD}G${SEP_WORD}${SEP_LINE}` }), headers: { 'Long-Pulling-Timeout': '30000' } })).status).toBe(403);
    expect(server.get('b', 'G')).toBe('x');
  });

  it('answers malformed requests with 400 and unknown paths with 404', async () => {
    const server = await startServer();
    const base = `http://${server.address}/nacos/v1/cs/configs`;
    expect((await fetch(`${base}?group=G`)).status).toBe(400);
    expect((await fetch(base, { method: 'POST', body: new URLSearchParams({ dataId: 'a', group: 'G' }) })).status).toBe(400);
    expect((await fetch(`${base}/listener`, { method: 'POST', body: new URLSearchParams({ x: '1' }) })).status).toBe(400);
    expect((await fetch(`${base}/listener`, { method: 'POST', body: listenBody([['only-a-data-id']]) })).status).toBe(400);
    expect((await fetch(`http://${server.address}/nacos/v2/cs/config?dataId=a&group=G`)).status).toBe(404);
    expect((await fetch(`${base}?dataId=a&group=G`, { method: 'PUT' })).status).toBe(404);
  });

  it('failNext answers the next n requests with the given status', async () => {
    const server = await startServer();
    server.publish('a', 'G', 'A');
    server.failNext(2, 503);
    const url = `http://${server.address}/nacos/v1/cs/configs?dataId=a&group=G`;
    expect((await fetch(url)).status).toBe(503);
    expect((await fetch(url)).status).toBe(503);
    expect(await (await fetch(url)).text()).toBe('A');
    expect(server.requests.get).toBe(3);
  });

  it('blackhole reads requests and never answers; stop() still ends them', async () => {
    const server = await startServer();
    server.blackhole = true;
    const received = once(server, 'request');
    const pending = fetch(`http://${server.address}/nacos/v1/cs/configs?dataId=a&group=G`);
    expect(await received).toEqual(['get']);
    expect(server.openConnections).toBe(1);
    await server.stop();
    await expect(pending).rejects.toThrow();
    expect(server.openConnections).toBe(0);
  });
});
