import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import type { RuntimeConfigStatus } from '../../src/config/runtime-config';
import { killAll, spawnZonal, type Proc } from '../support/processes';

/**
 * `zonal serve --config /etc/zonal/config/runtime.yaml` as the Kubernetes
 * manifests run it: the file is a key of a ConfigMap volume, which the
 * kubelet updates atomically through symlinks, never by writing the file in
 * place. Through the built CLI (dist/, `npm run build`).
 *
 * The volume as the kubelet lays it out (pkg/volume/util/atomic_writer.go):
 *
 *   ..2026_12_02_20_00_00.Ab12Cd/runtime.yaml   the real file
 *   ..data -> ..2026_12_02_20_00_00.Ab12Cd     one symlink to the payload in force
 *   runtime.yaml -> ..data/runtime.yaml         one symlink per key, never touched again
 *
 * An update writes a new timestamped dir, points a symlink `..data_tmp` at
 * it, renames `..data_tmp` over `..data` (the atomic moment), creates the
 * per-key symlinks that do not exist yet, then deletes the old timestamped
 * dir. The path the dispatcher watches is the same symlink all along; only
 * what it resolves to changes, and the file it resolved to before is deleted.
 *
 * What a user sees: the version in force and its settings (GET /config), the
 * "runtime config applied" / "refused" log lines, and submits taking the
 * document's defaultMaxAttempts.
 */

/** A ConfigMap volume driven the way the kubelet drives it. */
class ConfigMapVolume {
  private payloadDir: string | undefined;

  constructor(readonly dir: string) {}

  /** The user-visible path of a key (what the pod's --config names). */
  file(key: string): string {
    return path.join(this.dir, key);
  }

  /** The timestamped dir `..data` points at now. */
  get current(): string | undefined {
    return this.payloadDir;
  }

  /**
   * Publishes a new payload, in the kubelet's order. Returns performance.now()
   * at the rename over `..data`, when the new content becomes visible.
   */
  write(payload: Record<string, string>): number {
    const old = this.payloadDir;
    // (1) A new timestamped dir holding the whole payload (Go: MkdirTemp(dir, "..2006_01_02_15_04_05.")).
    const stamp = new Date().toISOString().replace(/[-:T]/g, '_').replace(/\..*$/, '');
    const tsDir = fs.mkdtempSync(path.join(this.dir, `..${stamp}.`));
    fs.chmodSync(tsDir, 0o755);
    for (const [key, text] of Object.entries(payload)) fs.writeFileSync(path.join(tsDir, key), text, { mode: 0o644 });
    // (2) `..data_tmp` -> the new dir, relative, as the kubelet writes it.
    const dataTmp = path.join(this.dir, '..data_tmp');
    fs.symlinkSync(path.basename(tsDir), dataTmp);
    // (3) Rename over `..data`: atomic, the new payload is in force from here.
    fs.renameSync(dataTmp, path.join(this.dir, '..data'));
    const swappedAt = performance.now();
    this.payloadDir = path.basename(tsDir);
    // (4) Per-key symlinks `key -> ..data/key`, only for keys that do not exist yet.
    for (const key of Object.keys(payload)) {
      const visible = this.file(key);
      if (!lexists(visible)) fs.symlinkSync(path.join('..data', key), visible);
    }
    // (5) The old timestamped dir goes.
    if (old !== undefined) fs.rmSync(path.join(this.dir, old), { recursive: true, force: true });
    return swappedAt;
  }

  /** What the volume holds now, for failure messages. */
  describe(): string {
    return fs
      .readdirSync(this.dir)
      .map((name) => {
        const full = path.join(this.dir, name);
        return fs.lstatSync(full).isSymbolicLink() ? `${name} -> ${fs.readlinkSync(full)}` : `${name}/`;
      })
      .join(', ');
  }
}

function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

interface LogLine {
  level?: string;
  mod?: string;
  msg?: string;
  [field: string]: unknown;
}

/** The process's JSON log lines on stderr, each with the moment this test read it; waits are woken by each new line. */
class LogWatch {
  readonly lines: { line: LogLine; atMs: number }[] = [];
  private readonly wakers = new Set<() => void>();

  constructor(proc: Proc) {
    readline.createInterface({ input: proc.child.stderr! }).on('line', (text) => {
      try {
        this.lines.push({ line: JSON.parse(text) as LogLine, atMs: performance.now() });
      } catch {
        this.lines.push({ line: { msg: text }, atMs: performance.now() });
      }
      for (const wake of [...this.wakers]) wake();
    });
    proc.exited.then(() => {
      for (const wake of [...this.wakers]) wake();
    }, () => undefined);
  }

  /** The config module's lines from index `since` on, for failure messages. */
  configLines(since: number): string {
    return this.lines
      .slice(since)
      .filter((l) => l.line.mod === 'config')
      .map((l) => JSON.stringify(l.line))
      .join('\n');
  }

  /** The first line from index `since` on that matches; rejects after `timeoutMs` with what `explain` says. */
  waitFor(since: number, match: (line: LogLine) => boolean, what: string, timeoutMs: number, explain: () => Promise<string>): Promise<{ line: LogLine; atMs: number }> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.lines.slice(since).find((l) => match(l.line));
        if (found === undefined) return false;
        done();
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        void explain().then((why) => reject(new Error(`no ${what} within ${timeoutMs} ms\n${why}`)));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(wake);
      };
      const wake = (): void => void check();
      this.wakers.add(wake);
      check();
    });
  }
}

async function configPage(admin: string): Promise<RuntimeConfigStatus> {
  const response = await fetch(`http://${admin}/config`, { signal: AbortSignal.timeout(2_000) });
  if (!response.ok) throw new Error(`/config answered ${response.status}`);
  return (await response.json()) as RuntimeConfigStatus;
}

/** One document per version; defaultMaxAttempts and drainGraceMs tell the versions apart in what the dispatcher does. */
const doc = (version: number, maxAttempts: number, extra = ''): string =>
  `# runtime config, key runtime.yaml of ConfigMap zonal-runtime\nversion: ${version}\ndrainGraceMs: ${maxAttempts * 100}\ndefaultMaxAttempts: ${maxAttempts}\n${extra}`;

/** A swap (or the start) must show its evidence within this; the file source's window is 1 s. */
const APPLY_TIMEOUT_MS = 5_000;

describe('zonal serve --config on a Kubernetes ConfigMap volume (kubelet symlink swaps)', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-configmap-'));
  const producers: ProducerClient[] = [];

  afterAll(async () => {
    for (const p of producers) p.close();
    await killAll();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('applies version 1 at start, follows every swap, refuses stale and invalid payloads, and keeps serving', async () => {
    const volume = new ConfigMapVolume(path.join(root, 'etc-zonal-config'));
    fs.mkdirSync(volume.dir);
    volume.write({ 'runtime.yaml': doc(1, 11) });
    const configFile = volume.file('runtime.yaml');
    expect(fs.lstatSync(configFile).isSymbolicLink()).toBe(true);
    expect(fs.readlinkSync(configFile)).toBe(path.join('..data', 'runtime.yaml'));

    const spawnedAt = performance.now();
    const proc = spawnZonal([
      'serve',
      '--grpc-address', '127.0.0.1:0',
      '--admin-address', '127.0.0.1:0',
      '--data-dir', path.join(root, 'data'),
      '--log-level', 'info',
      '--config', configFile,
    ]);
    const logs = new LogWatch(proc);
    const listening = await proc.waitForEvent('listening');
    const admin = String(listening['adminAddress']);
    const producer = new ProducerClient({ target: String(listening['grpcAddress']), call: { maxAttempts: 1, callTimeoutMs: 5_000 } });
    producers.push(producer);

    const explain = (since: number) => async (): Promise<string> => {
      let page: string;
      try {
        const s = await configPage(admin);
        page = JSON.stringify({ version: s.version, appliedFrom: s.appliedFrom, appliedAt: s.appliedAt, counts: s.counts, lastRefusal: s.lastRefusal });
      } catch (err) {
        page = `unreadable: ${String(err)}`;
      }
      return `GET /config: ${page}\nvolume: ${volume.describe()}\nconfig log lines since the swap:\n${logs.configLines(since) || '(none)'}\nprocess exit code: ${proc.child.exitCode}`;
    };
    const applied = (version: number) => (l: LogLine) => l.mod === 'config' && l.msg === 'runtime config applied' && l['version'] === version;
    const refused = (result: string) => (l: LogLine) => l.mod === 'config' && l.msg?.startsWith(`runtime config update refused (${result})`) === true;

    /** What a submit without max_attempts gets: the defaultMaxAttempts in force. */
    const submittedMaxAttempts = async (): Promise<number> => {
      const { taskId } = await producer.submit({ payload: 'configmap' });
      return (await producer.get(taskId)).maxAttempts;
    };
    /** Swaps the payload kubelet-style and waits for the line `match` accepts; returns ms from the rename to that line. */
    const swap = async (text: string, match: (l: LogLine) => boolean, what: string): Promise<number> => {
      const since = logs.lines.length;
      const old = volume.current;
      const swappedAt = volume.write({ 'runtime.yaml': text });
      expect(fs.existsSync(path.join(volume.dir, old!))).toBe(false); // the file the watcher had resolved to is gone
      const seen = await logs.waitFor(since, match, what, APPLY_TIMEOUT_MS, explain(since));
      return Math.round(seen.atMs - swappedAt);
    };

    // 1. Version 1 at start.
    const v1 = await logs.waitFor(0, applied(1), 'version 1 applied at start', APPLY_TIMEOUT_MS, explain(0));
    const v1Ms = Math.round(v1.atMs - spawnedAt);
    let page = await configPage(admin);
    expect(page.version).toBe(1);
    expect(page.source).toBe(`file ${configFile}`);
    expect(page.appliedFrom).toBe(`file ${configFile}`);
    expect(page.settings.core.drainGraceMs).toBe(1100);
    expect(await submittedMaxAttempts()).toBe(11);

    // 2. A kubelet swap to version 2.
    const v2Ms = await swap(doc(2, 12), applied(2), 'version 2 applied after the swap');
    page = await configPage(admin);
    expect(page.version).toBe(2);
    expect(page.settings.core.drainGraceMs).toBe(1200);
    expect(await submittedMaxAttempts()).toBe(12);

    // 3. A second swap: the watcher still follows after its first target was deleted.
    const v3Ms = await swap(doc(3, 13), applied(3), 'version 3 applied after the second swap');
    page = await configPage(admin);
    expect(page.version).toBe(3);
    expect(page.settings.core.drainGraceMs).toBe(1300);
    expect(await submittedMaxAttempts()).toBe(13);

    // 4. A stale version with other content is refused; version 3 stays.
    const staleMs = await swap(doc(2, 22), refused('stale'), 'stale version 2 refused');
    page = await configPage(admin);
    expect(page.version).toBe(3);
    expect(page.settings.core.drainGraceMs).toBe(1300);
    expect(page.lastRefusal).toMatchObject({ result: 'stale', version: 2, from: `file ${configFile}` });
    expect(await submittedMaxAttempts()).toBe(13);

    //    An invalid one (a misspelt key) too, even with a higher version.
    const invalidMs = await swap(doc(5, 55, 'drainGraceMS: 1\n'), refused('invalid'), 'invalid document refused');
    page = await configPage(admin);
    expect(page.version).toBe(3);
    expect(page.settings.core.drainGraceMs).toBe(1300);
    expect(page.lastRefusal?.result).toBe('invalid');
    expect(page.lastRefusal?.reason).toContain('drainGraceMS');
    expect(await submittedMaxAttempts()).toBe(13);

    //    Then a valid version 4 applies (4 < the refused 5: a refusal never moves the version).
    const v4Ms = await swap(doc(4, 14), applied(4), 'version 4 applied after the refusals');
    page = await configPage(admin);
    expect(page.version).toBe(4);
    expect(page.settings.core.drainGraceMs).toBe(1400);

    // 5. Still serving, and the path never looked deleted or unreadable to the dispatcher.
    expect(await submittedMaxAttempts()).toBe(14);
    const health = await fetch(`http://${admin}/healthz`, { signal: AbortSignal.timeout(2_000) });
    expect(health.status).toBe(200);
    expect(page.counts).toMatchObject({ applied: 4, stale: 1, invalid: 1, empty: 0 });
    const fileTrouble = logs.lines.filter((l) => /config file failed/.test(l.line.msg ?? ''));
    expect(fileTrouble.map((l) => l.line)).toEqual([]);
    console.log(
      `[figures] ConfigMap volume, kubelet swap (rename of ..data) -> decision seen in the log: ` +
        `v1 applied ${v1Ms} ms after spawn; v2 applied ${v2Ms} ms; v3 applied ${v3Ms} ms; stale v2 refused ${staleMs} ms; invalid refused ${invalidMs} ms; v4 applied ${v4Ms} ms (file source window: 1,000 ms)`,
    );

    expect(proc.child.exitCode).toBeNull();
    expect(await proc.kill('SIGTERM')).toEqual({ code: 0, signal: null });
  }, 60_000);
});
