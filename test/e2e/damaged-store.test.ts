import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { ZonalError } from '../../src/errors';
import { killAll, spawnZonal, type Proc } from '../support/processes';

function serve(dataDir: string, ...extra: string[]): Proc {
  return spawnZonal(['serve', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0', '--admin-address', '', ...extra]);
}

describe('a damaged database file (issue 8, section 5.3)', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'zonal-damaged-e2e-'));
  const db = path.join(dataDir, 'zonal.db');
  const producers: ProducerClient[] = [];

  afterAll(async () => {
    for (const p of producers) p.close();
    await killAll();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses to serve a file cut short after a clean stop, and starts with --allow-damaged-store', async () => {
    const first = serve(dataDir);
    const listening = await first.waitForEvent('listening');
    const producer = new ProducerClient({ target: String(listening['grpcAddress']) });
    producers.push(producer);
    const acked = await producer.submitMany(Array.from({ length: 200 }, (_, i) => ({ payload: 'x'.repeat(1_000) + i })));
    producer.close();
    expect((await first.kill('SIGTERM')).code).toBe(0);
    expect(existsSync(`${db}-wal`)).toBe(false);
    truncateSync(db, Math.floor(statSync(db).size / 2));

    const refused = serve(dataDir);
    // Whichever comes first: before the check, it started and served an empty store.
    const outcome = await Promise.race([refused.exited.then((exit) => exit), refused.waitForEvent('listening').then(() => 'listening' as const, () => refused.exited)]);
    expect(outcome).toEqual({ code: 1, signal: null });
    const message = refused.stderr.join('\n');
    expect(message).toContain('STORE_DAMAGED');
    expect(message).toContain(`the store ${db} is damaged`);
    expect(message).toContain('--allow-damaged-store');

    const forced = serve(dataDir, '--allow-damaged-store');
    const relisten = await forced.waitForEvent('listening');
    // Nothing of the unreadable file could be served: it was moved aside, whole, for recovery.
    const aside = readdirSync(dataDir).filter((f) => f.startsWith('zonal.db.damaged-'));
    expect(aside.length).toBe(1);
    const checker = new ProducerClient({ target: String(relisten['grpcAddress']), call: { maxAttempts: 1 } });
    producers.push(checker);
    const lost = await checker.get(acked[0]!.taskId).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(lost).toBeInstanceOf(ZonalError);
    expect((lost as ZonalError).reason).toBe('TASK_NOT_FOUND');
    expect((await forced.kill('SIGTERM')).code).toBe(0);
  });
});
