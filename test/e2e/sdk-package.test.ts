import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..');

/** Loads an entry of the built package by its public name in a fresh process; returns the files it loaded and the names it exports. */
function load(specifier: string): { files: string[]; packages: string[]; exports: string[] } {
  const script = `
    const mod = require(${JSON.stringify(specifier)});
    const files = Object.keys(require.cache);
    const packages = [...new Set(files.filter((f) => f.includes('/node_modules/')).map((f) => {
      const rest = f.split('/node_modules/').pop().split('/');
      return rest[0].startsWith('@') ? rest[0] + '/' + rest[1] : rest[0];
    }))];
    process.stdout.write(JSON.stringify({ files: files.filter((f) => !f.includes('/node_modules/')).map((f) => f.slice(${JSON.stringify(ROOT + '/')}.length)), packages, exports: Object.keys(mod) }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' })) as { files: string[]; packages: string[]; exports: string[] };
}

describe('the package: the SDK ships apart from the server', () => {
  it("`require('zonal')` loads the client only: no store, SQLite, PostgreSQL, control plane, config or server metrics", () => {
    const { files, packages, exports } = load('zonal');
    expect(exports).toEqual(expect.arrayContaining(['ProducerClient', 'Worker', 'NonRetryableError', 'ZonalError', 'TaskFailedError']));
    expect(exports).not.toContain('startServer');
    for (const folder of ['dist/store/', 'dist/server/', 'dist/app/', 'dist/xds/', 'dist/config/', 'dist/admin/', 'dist/cli/', 'dist/testing/']) {
      expect(files.filter((f) => f.startsWith(folder))).toEqual([]);
    }
    expect(files).not.toContain('dist/telemetry/prometheus.js');
    for (const pkg of ['better-sqlite3', 'pg', 'prom-client', 'nacos', 'chokidar', 'zod', 'yaml', '@grpc/grpc-js-xds']) expect(packages).not.toContain(pkg);
  });

  it("`require('zonal/server')` has startServer, and loads a store's driver only when that store is opened", () => {
    const { exports, packages } = load('zonal/server');
    expect(exports).toEqual(expect.arrayContaining(['startServer', 'compileServerOptions', 'parseStoreUrl', 'openStore']));
    expect(packages).not.toContain('better-sqlite3');
    expect(packages).not.toContain('pg');
  });

  it("`require('zonal/config')` has the runtime config without the dispatcher", () => {
    const { exports, files } = load('zonal/config');
    expect(exports).toEqual(expect.arrayContaining(['RuntimeConfig', 'followRuntimeConfig', 'openConfigSource']));
    expect(files.filter((f) => f.startsWith('dist/server/') || f.startsWith('dist/store/') || f.startsWith('dist/app/'))).toEqual([]);
  });
});
