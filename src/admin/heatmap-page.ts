import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Route, RouteAnswer } from './admin-server';

/**
 * The heatmap page's routes on the admin port: the page (at `/heatmap`,
 * and at `/`), its script and style, and ECharts from node_modules. The
 * page works offline: everything it loads comes from these routes, and it
 * reads its data from `/api/heatmap` (heatmap-api.ts) every 2 s.
 *
 * The assets live in `heatmap-page/` next to this file (`npm run build`
 * copies them into dist). Each is read on its first request and kept in
 * memory. ECharts is an optional peer dependency: it is resolved when the
 * page first asks for it, and its absence is a 503 that says what to install.
 */
const ASSETS_DIR = path.join(__dirname, 'heatmap-page');

const CONTENT_TYPES = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
} as const;

type Asset = keyof typeof CONTENT_TYPES;

/** The ECharts file the page loads; resolved at request time. */
export const ECHARTS_MODULE = 'echarts/dist/echarts.min.js';

export function heatmapPageRoutes(): Record<string, Route> {
  const cache = new Map<string, Buffer>();

  const read = (key: string, file: string): Buffer => {
    let body = cache.get(key);
    if (body === undefined) {
      body = readFileSync(file);
      cache.set(key, body);
    }
    return body;
  };

  const asset =
    (name: Asset): Route =>
    (): RouteAnswer => {
      const file = path.join(ASSETS_DIR, name);
      try {
        return { status: 200, body: read(name, file), contentType: CONTENT_TYPES[name] };
      } catch (err) {
        return {
          status: 500,
          body: `heatmap page asset ${file} is missing (${(err as NodeJS.ErrnoException).code ?? String(err)}): run npm run build, which copies src/admin/heatmap-page into dist\n`,
          contentType: 'text/plain; charset=utf-8',
        };
      }
    };

  const echarts: Route = () => {
    let file: string;
    try {
      file = require.resolve(ECHARTS_MODULE);
    } catch {
      return {
        status: 503,
        body: 'The heatmap page draws its charts with ECharts, an optional peer dependency that is not installed here: npm install echarts\n',
        contentType: 'text/plain; charset=utf-8',
      };
    }
    return { status: 200, body: read('echarts', file), contentType: 'text/javascript; charset=utf-8' };
  };

  const page = asset('index.html');
  return {
    '/': page,
    '/heatmap': page,
    '/heatmap/app.js': asset('app.js'),
    '/heatmap/style.css': asset('style.css'),
    '/heatmap/echarts.min.js': echarts,
  };
}
