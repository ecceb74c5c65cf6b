import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { RuntimeConfigStatus } from '../../src/config/runtime-config';
import { killAll, spawnZonal } from '../support/processes';

/**
 * The reproduction, through the built CLI (dist/, `npm run build`):
 * `zonal serve --config r.yaml` where r.yaml is nested 200,000 levels deep
 * used to abort the process (V8 "Allocation failed") on every start. It must
 * serve, refuse the document, keep refusing such documents, and still apply
 * a good one, with memory staying flat.
 */
const deep = (n: number): string => `{"version": 2, "x": ${'['.repeat(n)}${']'.repeat(n)}}`;

/** Polls the admin page until `done` holds (the dispatcher offers no push channel for this). */
async function waitForConfig(admin: string, what: string, done: (s: RuntimeConfigStatus) => boolean, timeoutMs = 15_000): Promise<RuntimeConfigStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: RuntimeConfigStatus | undefined;
  for (;;) {
    try {
      const response = await fetch(`http://${admin}/config`, { signal: AbortSignal.timeout(2_000) });
      last = (await response.json()) as RuntimeConfigStatus;
      if (done(last)) return last;
    } catch {
      // not answering yet
    }
    if (Date.now() >= deadline) throw new Error(`no ${what} within ${timeoutMs} ms; last seen: ${JSON.stringify(last?.counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? NaN) / 1024;
}

/** Replaces the file atomically (temp + rename), as documented for writers. */
function publish(file: string, text: string): void {
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

describe('zonal serve with a hostile --config file', () => {
  let dir = '';
  afterEach(async () => {
    await killAll();
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });
  afterAll(killAll);

  it('a 200,000-level document at start is refused, not a crash loop; later hostile documents too; a good one still applies', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-hostile-'));
    const file = path.join(dir, 'r.yaml');
    fs.writeFileSync(file, deep(200_000));
    // Written a minute ago: read at start and again when the watcher is ready, like the crash loop.
    fs.utimesSync(file, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const proc = spawnZonal(['serve', '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--config', file]);
    const admin = String((await proc.waitForEvent('listening'))['adminAddress']);
    const pid = proc.child.pid!;
    const rssAtStart = rssMb(pid);

    const refused = await waitForConfig(admin, 'the deep document refused', (s) => s.counts.invalid >= 1);
    expect(refused.version).toBe(0);
    expect(refused.lastRefusal?.reason).toBe('the document is larger than the limit of 16384 bytes');

    // Nested too deep but small enough to reach the depth check; then the same text again (new inode).
    publish(file, deep(5_000));
    const tooDeep = await waitForConfig(admin, 'the nested document refused', (s) => s.counts.invalid >= 2);
    expect(tooDeep.lastRefusal?.reason).toBe('nested more than 64 levels deep');
    publish(file, `${deep(5_000)}\n`);
    await waitForConfig(admin, 'the second nested document refused', (s) => s.counts.invalid >= 3);
    publish(file, deep(200_000));
    await waitForConfig(admin, 'the first document refused again', (s) => s.counts.invalid >= 4);

    publish(file, 'version: 3\ndrainGraceMs: 1234\n');
    const applied = await waitForConfig(admin, 'version 3 in force', (s) => s.version === 3);
    expect(applied.settings.core.drainGraceMs).toBe(1234);
    const rssAtEnd = rssMb(pid);
    console.log(`[figures] zonal serve with hostile --config documents: RSS ${rssAtStart.toFixed(0)} MB at listening, ${rssAtEnd.toFixed(0)} MB after 4 refusals and an apply (the bug: 84 MB -> 1.08 GB, then SIGABRT)`);
    expect(rssAtEnd - rssAtStart).toBeLessThan(100);
    expect(proc.child.exitCode).toBeNull();
    expect(await proc.kill('SIGTERM')).toEqual({ code: 0, signal: null });
  }, 90_000);
});
