import * as http from 'node:http';
import type { Dispatcher } from '../server/dispatcher';

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
 * (accepting work), plus `extra` routes such as /metrics and /xds/status.
 */
export function startAdminServer(dispatcher: Dispatcher, host: string, port: number, extra: Record<string, Route> = {}): Promise<http.Server> {
  return startHttpServer(host, port, {
    '/healthz': () => ({ status: 200, body: { status: 'ok', lifecycle: dispatcher.lifecycle } }),
    '/readyz': () => {
      const ready = dispatcher.lifecycle === 'RUNNING';
      return { status: ready ? 200 : 503, body: { ...dispatcher.stats(), accepting: ready, lifecycle: dispatcher.lifecycle } };
    },
    ...extra,
  });
}
