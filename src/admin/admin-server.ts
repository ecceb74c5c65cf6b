import * as http from 'node:http';

/** What the admin port needs to know of a dispatcher: whether it is up, whether it accepts work and why not, and its counts. */
export interface HealthView {
  readonly lifecycle: string;
  readiness(): { ready: boolean };
  stats(): object;
}

/** What a route answers: a status and a body, JSON by default, or text or bytes with their content type. */
export interface RouteAnswer {
  status: number;
  body: unknown;
  contentType?: string;
}

/** A route answers a GET of its path; it gets the whole URL (for its query string). */
export type Route = (url: URL) => RouteAnswer | Promise<RouteAnswer>;

/** Who may read the routes: a bearer token check, and the paths anyone may read. */
export interface RouteAuth {
  /** Whether an `authorization` header value carries a valid token (constant time: src/security/token-file.ts). */
  matchesHeader(header: string | undefined): boolean;
  /** Paths answered without a token (/healthz and /readyz: probes carry none). */
  readonly openPaths: ReadonlySet<string>;
}

/** A small HTTP server of read-only routes, for health, status and metrics. */
export function startHttpServer(host: string, port: number, routes: Record<string, Route>, auth?: RouteAuth): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' });
      res.end('method not allowed: the admin port answers GET and HEAD only\n');
      return;
    }
    let url: URL;
    try {
      // The request target is a path: "//x/../metrics" must stay a path, not become a host.
      url = new URL(`http://admin${(req.url ?? '/').startsWith('/') ? (req.url ?? '/') : `/${req.url ?? ''}`}`);
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('bad request: unreadable URL\n');
      return;
    }
    if (auth !== undefined && !auth.openPaths.has(url.pathname) && !auth.matchesHeader(req.headers.authorization)) {
      // Says nothing of the routes, nor of the token it got.
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer realm="zonal-admin"' });
      res.end('unauthorized: send "Authorization: Bearer <token>" with a token of the dispatcher\'s --admin-token-file (only /healthz and /readyz are open)\n');
      return;
    }
    const route = routes[url.pathname];
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found: try ${Object.keys(routes).join(', ')}\n`);
      return;
    }
    Promise.resolve()
      .then(() => route(url))
      .then(
        ({ status, body, contentType }) => {
          res.writeHead(status, { 'content-type': contentType ?? 'application/json' });
          res.end(contentType === undefined ? JSON.stringify(body, null, 2) : Buffer.isBuffer(body) ? body : String(body));
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`error: ${err instanceof Error ? err.message : String(err)}\n`);
        },
      );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * The dispatcher's admin HTTP: /healthz (the process is up), /readyz
 * (accepting work: running, and its store answers; the body says why not),
 * plus `extra` routes such as /metrics and /xds/status.
 */
export const ADMIN_OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

export function startAdminServer(view: HealthView, host: string, port: number, extra: Record<string, Route> = {}, auth?: Pick<RouteAuth, 'matchesHeader'>): Promise<http.Server> {
  return startHttpServer(
    host,
    port,
    {
    '/healthz': () => ({ status: 200, body: { status: 'ok', lifecycle: view.lifecycle } }),
    '/readyz': () => {
      const readiness = view.readiness();
      return { status: readiness.ready ? 200 : 503, body: { ...readiness, accepting: readiness.ready, ...view.stats() } };
    },
    ...extra,
    },
    auth !== undefined ? { matchesHeader: (header) => auth.matchesHeader(header), openPaths: ADMIN_OPEN_PATHS } : undefined,
  );
}
