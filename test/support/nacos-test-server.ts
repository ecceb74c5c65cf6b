/**
 * NacosTestServer: a protocol-level stand-in for a Nacos 2.x config server,
 * speaking the v1 HTTP open API that the npm `nacos` client (2.6.3) uses.
 * It was written from the protocol description in /work/shared/notes/nacos.md
 * and from reading the client (nacos-config/src/client_worker.ts, http_agent.ts).
 *
 * Implemented, under the context path `/nacos`:
 * - GET    /v1/cs/configs?dataId&group&tenant     -> 200 raw content, 404 when missing.
 * - POST   /v1/cs/configs (form: dataId, group, content, tenant, type, appName) -> `true`.
 * - DELETE /v1/cs/configs (params in query or body) -> `true`.
 * - POST   /v1/cs/configs/listener (form `Listening-Configs`, header `Long-Pulling-Timeout`):
 *   lines `dataId^Bgroup^Bmd5[^Btenant]^A`, URL-decoded once more after form decoding.
 *   Any MD5 differing from the store is answered at once with the URL-encoded changed
 *   keys (`dataId^Bgroup[^Btenant]^A`) and a newline; otherwise the poll is held for
 *   min(holdMs, Long-Pulling-Timeout - 500) ms and answered as soon as a watched key
 *   changes, or with an empty body on timeout. Without the header it answers at once.
 * - Optional username/password check (`start({ auth })`): both must be present among the
 *   request's parameters (query and form body merged, like the real server's Servlet
 *   parameters), otherwise 403.
 * - Test knobs: `blackhole` (read requests, never answer; wins over failNext), `failNext(n, status)`,
 *   `pollsAnswerAtOnce` ('unchanged': every long poll is answered at once with nothing changed, like
 *   a proxy that cuts held requests; 'changed': at once with every key changed, like a server whose
 *   MD5 never matches the client's),
 *   `releaseHeldPolls()`, counters, `openConnections`, `heldPolls`, and events
 *   'request' (kind), 'pollHeld', 'pollAnswered' (changed key count), 'pollDropped'.
 *
 * Not implemented: the gRPC API (Nacos 2.x clients other than this one use it), the
 * accessToken login (/v1/auth/login) and token checks, beta (gray) and tag configs,
 * aggregate/batch APIs, history, the `public` namespace alias (the default tenant is ''),
 * config types/metadata (type and appName are accepted and ignored), and clustering.
 *
 * The store lives in the object, so it survives stop()/restart(); stop() closes the
 * listener, destroys every socket (held polls included) and clears every hold timer.
 */
import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

const [LINE, WORD] = ['\u0001', '\u0002'];
const [CONFIGS, LISTENER] = ['/nacos/v1/cs/configs', '/nacos/v1/cs/configs/listener'];
const MAX_BODY = 10 * 1024 * 1024;

export type RequestKind = 'get' | 'publish' | 'remove' | 'listen';
const CONFIG_KINDS = new Map<string, RequestKind>([['GET', 'get'], ['POST', 'publish'], ['DELETE', 'remove']]);

export interface NacosTestServerOptions {
  /** Port to listen on, 127.0.0.1 only; 0 (default) picks a free one. */
  port?: number;
  /** How long an unchanged long poll is held; default 29_500 like the real server. */
  holdMs?: number;
  /** When set, every request must carry these `username` and `password` parameters. */
  auth?: { username: string; password: string };
}

interface Watch { dataId: string; group: string; md5: string; tenant: string }
interface HeldPoll { watches: Watch[]; res: http.ServerResponse; timer: NodeJS.Timeout }

const md5Of = (content: string | undefined): string =>
  content === undefined ? '' : createHash('md5').update(content, 'utf8').digest('hex');
const keyOf = (dataId: string, group: string, tenant = ''): string => JSON.stringify([tenant, group, dataId]);

function send(res: http.ServerResponse, status: number, body: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=UTF-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export class NacosTestServer extends EventEmitter {
  /** Long-poll hold time for polls that arrive from now on; tests may lower it before cleanup. */
  holdMs: number;
  /** When true, requests are read (and counted) but never answered. */
  blackhole = false;
  /** Misbehaviour of the long poll: answer it at once, as unchanged or as changed, instead of holding it. */
  pollsAnswerAtOnce: 'unchanged' | 'changed' | undefined = undefined;
  readonly requests: Record<RequestKind, number> = { get: 0, publish: 0, remove: 0, listen: 0 };

  private readonly store = new Map<string, string>();
  private readonly sockets = new Set<Socket>();
  private readonly held = new Set<HeldPoll>();
  private readonly auth: { username: string; password: string } | undefined;
  private server: http.Server | undefined;
  private listenPort = 0;
  private failures = { left: 0, status: 500 };
  private closed = false;

  private constructor(options: NacosTestServerOptions) {
    super();
    this.holdMs = options.holdMs ?? 29_500;
    this.auth = options.auth;
  }

  static async start(options: NacosTestServerOptions = {}): Promise<NacosTestServer> {
    const server = new NacosTestServer(options);
    await server.listen(options.port ?? 0);
    return server;
  }

  get port(): number { return this.listenPort; }
  get address(): string { return `127.0.0.1:${this.listenPort}`; }
  get openConnections(): number { return this.sockets.size; }
  get heldPolls(): number { return this.held.size; }

  get(dataId: string, group: string, tenant?: string): string | undefined {
    return this.store.get(keyOf(dataId, group, tenant));
  }

  publish(dataId: string, group: string, content: string, tenant?: string): void {
    this.store.set(keyOf(dataId, group, tenant), content);
    this.wake(keyOf(dataId, group, tenant));
  }

  remove(dataId: string, group: string, tenant?: string): void {
    this.store.delete(keyOf(dataId, group, tenant));
    this.wake(keyOf(dataId, group, tenant));
  }

  /** Answers the next `n` requests (of any kind) with `status` and an error body. */
  failNext(n: number, status = 500): void { this.failures = { left: n, status }; }

  /** Answers every held poll now with an empty body, as if its hold had timed out. */
  releaseHeldPolls(): void {
    for (const poll of [...this.held]) this.answer(poll, []);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const poll of this.held) clearTimeout(poll.timer);
    this.held.clear();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  async restart(): Promise<void> {
    if (this.closed) throw new Error('NacosTestServer: restart() after close()');
    if (!this.server) await this.listen(this.listenPort);
  }

  /** Like stop(), but final: restart() is refused afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  private async listen(port: number): Promise<void> {
    const server = http.createServer((req, res) => this.receive(server, req, res));
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening'); // rejects on 'error' (EADDRINUSE on restart, say)
    this.server = server;
    this.listenPort = (server.address() as AddressInfo).port;
  }

  private receive(server: http.Server, req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on('end', () => {
      // A request completing after stop() (or from a previous listener) is not served.
      if (this.server !== server) return void req.socket.destroy();
      this.route(req, res, Buffer.concat(chunks).toString('utf8'), size > MAX_BODY);
    });
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse, body: string, tooLarge: boolean): void {
    if (!URL.canParse(req.url ?? '', 'http://127.0.0.1')) return send(res, 400, 'malformed request target');
    const url = new URL(req.url ?? '', 'http://127.0.0.1');
    const path = url.pathname.replace(/\/+$/, '');
    const kind = path === CONFIGS ? CONFIG_KINDS.get(req.method ?? '') : path === LISTENER && req.method === 'POST' ? 'listen' : undefined;
    if (kind) this.requests[kind] += 1;
    this.emit('request', kind);
    if (this.blackhole) return;
    if (this.failures.left > 0) {
      this.failures.left -= 1;
      return send(res, this.failures.status, `injected failure ${this.failures.status}`);
    }
    if (!kind) return send(res, 404, 'no such endpoint');
    if (tooLarge) return send(res, 413, 'request body too large');
    const params = new URLSearchParams(url.search);
    for (const [name, value] of new URLSearchParams(body)) params.set(name, value);
    if (this.auth && (params.get('username') !== this.auth.username || params.get('password') !== this.auth.password)) {
      return send(res, 403, 'unknown user!');
    }
    if (kind === 'listen') return this.listenRequest(req, res, params.get('Listening-Configs'));
    const dataId = params.get('dataId');
    const group = params.get('group');
    const tenant = params.get('tenant') ?? '';
    if (!dataId || !group) return send(res, 400, 'dataId and group are required');
    if (kind === 'get') {
      const content = this.get(dataId, group, tenant);
      return content === undefined ? send(res, 404, 'config data not exist') : send(res, 200, content);
    }
    if (kind === 'publish') {
      const content = params.get('content');
      if (content === null) return send(res, 400, 'content is required');
      this.publish(dataId, group, content, tenant);
    } else {
      this.remove(dataId, group, tenant);
    }
    send(res, 200, 'true');
  }

  private listenRequest(req: http.IncomingMessage, res: http.ServerResponse, raw: string | null): void {
    if (raw === null) return send(res, 400, 'Listening-Configs is required');
    let value = raw;
    try {
      value = decodeURIComponent(raw); // the real server decodes once more after form decoding
    } catch {
      // not percent-encoded a second time: use it as it is
    }
    const watches: Watch[] = [];
    for (const line of value.split(LINE)) {
      if (line === '') continue;
      const [dataId, group, md5, tenant, ...rest] = line.split(WORD);
      if (!dataId || !group || md5 === undefined || rest.length > 0) return send(res, 400, 'malformed Listening-Configs');
      watches.push({ dataId, group, md5, tenant: tenant ?? '' });
    }
    if (this.pollsAnswerAtOnce !== undefined) return this.respond(res, this.pollsAnswerAtOnce === 'changed' ? watches : []);
    const changed = this.changed(watches);
    const timeout = Number(req.headers['long-pulling-timeout'] ?? NaN);
    if (changed.length > 0 || !Number.isFinite(timeout)) return this.respond(res, changed);
    if (req.socket.destroyed) return; // gone already: nothing to hold
    const holdMs = Math.max(0, Math.min(this.holdMs, timeout - 500));
    const poll: HeldPoll = { watches, res, timer: setTimeout(() => this.answer(poll, []), holdMs) };
    this.held.add(poll);
    res.on('close', () => {
      // The client went away while held: forget the poll and its timer.
      if (!this.held.delete(poll)) return;
      clearTimeout(poll.timer);
      this.emit('pollDropped');
    });
    this.emit('pollHeld');
  }

  private changed(watches: Watch[]): Watch[] {
    return watches.filter((w) => md5Of(this.get(w.dataId, w.group, w.tenant)) !== w.md5);
  }

  /** A store key changed: answer every held poll that watches it and now sees a difference. */
  private wake(key: string): void {
    for (const poll of [...this.held]) {
      if (!poll.watches.some((w) => keyOf(w.dataId, w.group, w.tenant) === key)) continue;
      const changed = this.changed(poll.watches);
      if (changed.length > 0) this.answer(poll, changed);
    }
  }

  private answer(poll: HeldPoll, changed: Watch[]): void {
    if (!this.held.delete(poll)) return;
    clearTimeout(poll.timer);
    this.respond(poll.res, changed);
  }

  private respond(res: http.ServerResponse, changed: Watch[]): void {
    const lines = changed.map((w) => [w.dataId, w.group, ...(w.tenant ? [w.tenant] : [])].join(WORD) + LINE);
    send(res, 200, changed.length > 0 ? encodeURIComponent(lines.join('')) + '\n' : '');
    this.emit('pollAnswered', changed.length);
  }
}
