/**
 * Runs the failover scenario alone and prints its report as JSON:
 *   npx tsc -p tsconfig.bench.json && node dist-bench/bench/suite/failover-main.js [--quick]
 * PostgreSQL from ZONAL_PG_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import * as path from 'node:path';
import { failover } from './failover';

const root = path.resolve(__dirname, '..', '..', '..');
failover({
  quick: process.argv.includes('--quick'),
  root,
  cli: path.join(root, 'dist', 'cli', 'main.js'),
  sdk: path.join(root, 'dist', 'index.js'),
  pgUrl: process.env['ZONAL_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
  redisUrl: 'redis://127.0.0.1:6379',
}).then(
  (report) => {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`failover: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
