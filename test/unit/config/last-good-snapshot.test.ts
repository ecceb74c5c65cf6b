import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LastGoodSnapshot } from '../../../src/config/last-good-snapshot';

describe('LastGoodSnapshot', () => {
  let dir: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-snapshot-'));
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('save then load round-trips the text as delivered', async () => {
    const errors: Error[] = [];
    const snapshot = new LastGoodSnapshot(dir, (e) => errors.push(e));
    const text = '#zonal-signature ed25519 0123456789abcdef AAAA\nversion: 3\nlogLevel: warn\n# é ✓\n';
    await snapshot.save(text);
    expect(snapshot.load()).toBe(text);
    expect(fs.readFileSync(path.join(dir, 'runtime-config.last-good'), 'utf8')).toBe(text);
    // A new instance (a restart) reads it too.
    expect(new LastGoodSnapshot(dir).load()).toBe(text);
    expect(errors).toEqual([]);
    expect(snapshot.error).toBeUndefined();
  });

  it('creates the data dir when it does not exist yet', async () => {
    const nested = path.join(dir, 'a', 'b');
    const snapshot = new LastGoodSnapshot(nested);
    await snapshot.save('version: 1\n');
    expect(snapshot.load()).toBe('version: 1\n');
  });

  it('the file is readable by its owner only', async () => {
    const snapshot = new LastGoodSnapshot(dir);
    await snapshot.save('version: 1\n');
    expect(fs.statSync(snapshot.path).mode & 0o777).toBe(0o600);
  });

  it('a burst of saves ends with the newest text on disk and no temporary file left', async () => {
    const snapshot = new LastGoodSnapshot(dir);
    const saves: Promise<void>[] = [];
    for (let v = 1; v <= 20; v++) saves.push(snapshot.save(`version: ${v}\n`));
    await Promise.all(saves);
    await snapshot.flush();
    expect(snapshot.load()).toBe('version: 20\n');
    expect(fs.readdirSync(dir)).toEqual(['runtime-config.last-good']);
  });

  it('a save resolves only once its text (or a newer one) is on disk', async () => {
    const snapshot = new LastGoodSnapshot(dir);
    const first = snapshot.save('version: 1\n');
    const second = snapshot.save('version: 2\n');
    await first;
    expect(['version: 1\n', 'version: 2\n']).toContain(snapshot.load());
    await second;
    expect(snapshot.load()).toBe('version: 2\n');
  });

  it('a temp file left by a crash mid-write is removed at load, and the old snapshot is what loads', async () => {
    await new LastGoodSnapshot(dir).save('version: 4\n');
    fs.writeFileSync(path.join(dir, 'runtime-config.last-good.4242.tmp'), 'version: 5\n# torn');
    fs.writeFileSync(path.join(dir, 'unrelated.tmp'), 'keep me');
    expect(new LastGoodSnapshot(dir).load()).toBe('version: 4\n');
    expect(fs.readdirSync(dir).sort()).toEqual(['runtime-config.last-good', 'unrelated.tmp']);
  });

  it('load of a missing file is undefined', () => {
    expect(new LastGoodSnapshot(dir).load()).toBeUndefined();
    expect(new LastGoodSnapshot(path.join(dir, 'nope')).load()).toBeUndefined();
  });

  it('a write that cannot happen is reported through onError and never rejects', async () => {
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, 'x');
    const errors: Error[] = [];
    // The data dir would be below a regular file, so mkdir fails (ENOTDIR).
    const snapshot = new LastGoodSnapshot(path.join(file, 'data'), (e) => errors.push(e));
    await expect(snapshot.save('version: 1\n')).resolves.toBeUndefined();
    await expect(snapshot.flush()).resolves.toBeUndefined();
    expect(errors).toHaveLength(1);
    expect((errors[0] as NodeJS.ErrnoException).code).toBe('ENOTDIR');
    expect(snapshot.error).toBe(errors[0]);
    expect(snapshot.load()).toBeUndefined();
  });

  it('a later successful write clears the error it reported', async () => {
    const blocker = path.join(dir, 'data');
    fs.writeFileSync(blocker, 'x');
    const errors: Error[] = [];
    const snapshot = new LastGoodSnapshot(path.join(blocker, 'sub'), (e) => errors.push(e));
    await snapshot.save('version: 1\n');
    expect(snapshot.error).toBeDefined();
    fs.rmSync(blocker);
    await snapshot.save('version: 2\n');
    expect(snapshot.error).toBeUndefined();
    expect(snapshot.load()).toBe('version: 2\n');
    expect(errors).toHaveLength(1);
  });
});
