import { closeSync, mkdtempSync, openSync, renameSync, rmSync, utimesSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Decision } from '../../src/config/config-gate';
import { FileSource } from '../../src/config/file-source';
import { RuntimeConfig } from '../../src/config/runtime-config';
import { DEFAULT_BASELINE } from '../../src/config/runtime-schema';
import type { RuntimeSettings } from '../../src/config/runtime-schema';

/**
 * Real files, written the ways writers really write them, through a
 * FileSource with its default stability window: a document is applied
 * only whole.
 */
const FULL_V2 = [
  'version: 2',
  'drainGraceMs: 1111',
  'defaultMaxAttempts: 7',
  'keepalive:',
  '  lbIdleWindowMs: 20000',
  'logLevel: warn',
  '',
].join('\n');
/** The first half ends at a line break, so it is itself a valid document with version 2. */
const HALF_V2 = FULL_V2.slice(0, FULL_V2.indexOf('keepalive:'));

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Rig {
  file: string;
  config: RuntimeConfig;
  decisions: Decision[];
  applied: RuntimeSettings[];
  /** Resolves at the next applied version >= `version`. */
  appliedVersion(version: number): Promise<RuntimeSettings>;
}

describe('a runtime config file being written', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function rig(initial: string): Promise<Rig> {
    const dir = mkdtempSync(path.join(tmpdir(), 'zonal-file-writes-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'runtime.yaml');
    writeFileSync(file, initial);
    // Written long ago: delivered at start.
    utimesSync(file, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const config = new RuntimeConfig({ baseline: DEFAULT_BASELINE, source: new FileSource(file) });
    cleanups.push(() => config.close());
    const decisions: Decision[] = [];
    const applied: RuntimeSettings[] = [];
    const waiters: { version: number; resolve: (s: RuntimeSettings) => void }[] = [];
    config.onDecision((d) => decisions.push(d));
    config.onChange((settings) => {
      applied.push(settings);
      for (const w of waiters.splice(0)) if (settings.version >= w.version) w.resolve(settings);
      else waiters.push(w);
    });
    config.start();
    return {
      file,
      config,
      decisions,
      applied,
      appliedVersion: (version) =>
        config.current.version >= version ? Promise.resolve(config.current) : new Promise((resolve) => waiters.push({ version, resolve })),
    };
  }

  for (const pauseMs of [100, 200, 300]) {
    it(`truncate, write half, pause ${pauseMs} ms, write the rest: only the whole document is applied`, async () => {
      const r = await rig('version: 1\n');
      expect(r.config.current.version).toBe(1);
      // The writer from the issue: in place, in two writes with a pause between.
      const fd = openSync(r.file, 'r+');
      try {
        ftruncateSync(fd, 0);
        writeSync(fd, HALF_V2, 0);
        await sleep(pauseMs); // the writer's own pause (what is under test), not a wait for an outcome
        writeSync(fd, FULL_V2.slice(HALF_V2.length), Buffer.byteLength(HALF_V2));
      } finally {
        closeSync(fd);
      }
      const settings = await r.appliedVersion(2);
      expect(settings.core.keepalive.lbIdleWindowMs).toBe(20_000);
      expect(settings.logLevel).toBe('warn');
      expect(settings.core.drainGraceMs).toBe(1111);
      // Version 2 was applied once, whole; the half was never offered, so nothing was refused as stale.
      expect(r.applied.map((s) => s.version)).toEqual([1, 2]);
      expect(r.decisions.filter((d) => d.result === 'stale')).toEqual([]);
      expect(r.config.resultCounts).toMatchObject({ applied: 2, stale: 0, invalid: 0 });
    });
  }

  it('a temp file renamed over the document is applied once', async () => {
    const r = await rig('version: 1\n');
    writeFileSync(`${r.file}.tmp`, FULL_V2);
    renameSync(`${r.file}.tmp`, r.file);
    const settings = await r.appliedVersion(2);
    expect(settings.core.keepalive.lbIdleWindowMs).toBe(20_000);
    expect(r.config.resultCounts).toMatchObject({ applied: 2, duplicate: 0 });
  });

  it('a file written just before start waits for the window; one written long ago is applied before start returns, and read once', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'zonal-file-writes-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const fresh = path.join(dir, 'fresh.yaml');
    writeFileSync(fresh, 'version: 4\n');
    const config = new RuntimeConfig({ baseline: DEFAULT_BASELINE, source: new FileSource(fresh) });
    cleanups.push(() => config.close());
    const applied = new Promise<number>((resolve) => config.onChange((s) => resolve(s.version)));
    config.start();
    expect(config.current.version).toBe(0);
    expect(await applied).toBe(4);

    const r = await rig('version: 9\n');
    expect(r.config.current.version).toBe(9);
    // The watcher's 'ready' (and any later look) finds the same file: it is not delivered again.
    const another = await rig('version: 1\n');
    await another.config.close();
    expect(r.config.resultCounts).toMatchObject({ applied: 1, duplicate: 0 });
  });

  it('close() leaves no timer behind, even with a confirmation pending', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((k) => k === 'Timeout').length;
    const before = timers();
    const r = await rig('version: 1\n');
    writeFileSync(r.file, 'version: 2\n'); // a window starts when the watcher sees it
    await new Promise<void>((resolve) => {
      const check = (): void => (timers() > before ? resolve() : void setImmediate(check));
      check();
    });
    await r.config.close();
    expect(timers()).toBe(before);
    expect(r.config.current.version).toBe(1);
  });
});
