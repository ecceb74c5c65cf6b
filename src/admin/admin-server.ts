import * as http from 'node:http';

/** What the admin port needs to know of a dispatcher: whether it is up, whether it accepts work and why not, and its counts. */
export interface HealthView {
  readonly lifecycle: string;
  readiness(): { ready: boolean };
  stats(): object;
}

/** A route answers with a status and a body: JSON by default, or text with its content type. */
export type Route = () => { status: number; body: unknown; contentType?: string } | Promise<{ status: number; body: unknown; contentType?: string }>;

/** A small HTTP server of read-only routes, for health, status and metrics. */
export function startHttpServer(host: string, port: number, routes: Record<string, Route>): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const route = routes[(req.url ?? '/').split('?')[0] ?? '/'];
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found: try ${Object.keys(routes).join(', ')}\n`);
      return;
    }
    Promise.resolve()
      .then(route)
      .then(
        ({ status, body, contentType }) => {
          res.writeHead(status, { 'content-type': contentType ?? 'application/json' });
          res.end(contentType === undefined ? JSON.stringify(body, null, 2) : String(body));
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
export function startAdminServer(view: HealthView, host: string, port: number, extra: Record<string, Route> = {}): Promise<http.Server> {
  return startHttpServer(host, port, {
    '/healthz': () => ({ status: 200, body: { status: 'ok', lifecycle: view.lifecycle } }),
    '/readyz': () => {
      const readiness = view.readiness();
      return { status: readiness.ready ? 200 : 503, body: { ...readiness, accepting: readiness.ready, ...view.stats() } };
    },
    ...extra,
  });
}
