import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Decision } from '../../../src/config/config-gate';
import { RuntimeConfig, type RuntimeConfigOptions } from '../../../src/config/runtime-config';
import { DEFAULT_BASELINE } from '../../../src/config/runtime-schema';
import { PublicKeyRing, signDocument } from '../../../src/config/signature';

const SNAPSHOT_FILE = 'runtime-config.last-good';
const NOW_MS = Date.UTC(2026, 10, 22, 3, 0, 10);
const doc = (version: number, extra = ''): string => `version: ${version}\n${extra}`;

describe('RuntimeConfig', () => {
  let dir: string;
  let configs: RuntimeConfig[];

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-runtime-config-'));
    configs = [];
  });

  afterEach(async () => {
    for (const config of configs) await config.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function make(options: Partial<RuntimeConfigOptions> = {}): RuntimeConfig {
    const config = new RuntimeConfig({ baseline: DEFAULT_BASELINE, dataDir: dir, nowMs: () => NOW_MS, ...options });
    configs.push(config);
    return config;
  }

  it('starts on the baseline (version 0) and says where its settings came from', () => {
    const config = make();
    config.start();
    expect(config.current.version).toBe(0);
    expect(config.status()).toMatchObject({ version: 0, source: 'none (startup options only)', appliedFrom: 'defaults', appliedAt: undefined, lastRefusal: undefined, signedBy: [] });
  });

  it('onChange listeners run in version order with (settings, previous), and only for applied documents', () => {
    const config = make();
    config.start();
    const seen: [number, number][] = [];
    config.onChange((settings, previous) => seen.push([previous.version, settings.version]));
    for (const v of [1, 3, 2, 3, 5, 4]) config.offer(doc(v), 'test');
    expect(seen).toEqual([
      [0, 1],
      [1, 3],
      [3, 5],
    ]);
    expect(config.current.version).toBe(5);
  });

  it('the function onChange returns removes the listener', () => {
    const config = make();
    const seen: number[] = [];
    const off = config.onChange((s) => seen.push(s.version));
    config.offer(doc(1), 'test');
    off();
    config.offer(doc(2), 'test');
    expect(seen).toEqual([1]);
  });

  it('a listener that throws does not stop the others, and the document is still applied', () => {
    const config = make();
    const seen: string[] = [];
    config.onChange(() => seen.push('first'));
    config.onChange(() => {
      throw new Error('listener bug');
    });
    config.onChange((s) => seen.push(`third saw ${s.version}`));
    const decision = config.offer(doc(1), 'test');
    expect(decision.result).toBe('applied');
    expect(seen).toEqual(['first', 'third saw 1']);
    expect(config.current.version).toBe(1);
  });

  it('resultCounts count every decision by result and add up to the documents offered', () => {
    const config = make();
    const offers: (string | null)[] = [doc(1), doc(1), doc(2), doc(1), null, '   ', 'version: [', doc(3, 'bogus: 1\n'), doc(4)];
    for (const text of offers) config.offer(text, 'test');
    expect(config.resultCounts).toEqual({ applied: 3, stale: 1, invalid: 2, bad_signature: 0, empty: 2, duplicate: 1 });
    expect(Object.values(config.resultCounts).reduce((a, b) => a + b, 0)).toBe(offers.length);
    expect(config.status().counts).toEqual(config.resultCounts);
  });

  it('status() shows the last refusal, and an applied document or a duplicate does not clear it', () => {
    const config = make();
    config.offer(doc(2), 'file /etc/zonal.yaml');
    expect(config.status()).toMatchObject({ version: 2, appliedFrom: 'file /etc/zonal.yaml', appliedAt: new Date(NOW_MS).toISOString(), lastRefusal: undefined });

    config.offer(doc(3, 'defaultMaxAttempts: 0\n'), 'nacos://h:8848/zonal?group=DEFAULT_GROUP');
    const refusal = {
      result: 'invalid',
      reason: 'defaultMaxAttempts must be between 1 and 1000, got 0',
      version: 3,
      at: new Date(NOW_MS).toISOString(),
      from: 'nacos://h:8848/zonal?group=DEFAULT_GROUP',
    };
    expect(config.status().lastRefusal).toEqual(refusal);
    expect(config.status().version).toBe(2);

    config.offer(doc(2), 'file /etc/zonal.yaml');
    expect(config.status().lastRefusal).toEqual(refusal);
    config.offer(doc(1), 'file /etc/zonal.yaml');
    expect(config.status().lastRefusal).toMatchObject({ result: 'stale', version: 1 });
  });

  it('start() applies the last-good snapshot found in the data dir before anything else', () => {
    fs.writeFileSync(path.join(dir, SNAPSHOT_FILE), doc(7, 'drainGraceMs: 1234\n'));
    const config = make();
    const seen: number[] = [];
    config.onChange((s) => seen.push(s.version));
    expect(config.current.version).toBe(0);
    config.start();
    expect(seen).toEqual([7]);
    expect(config.current.core.drainGraceMs).toBe(1234);
    expect(config.status().appliedFrom).toBe('last-good snapshot');
    // What arrives later is decided against the snapshot's version.
    expect(config.offer(doc(6), 'test').result).toBe('stale');
    expect(config.offer(doc(8), 'test').result).toBe('applied');
  });

  it('a snapshot that no longer verifies (keys configured now, snapshot unsigned) is refused and the baseline stays', () => {
    fs.writeFileSync(path.join(dir, SNAPSHOT_FILE), doc(7, 'drainGraceMs: 1234\n'));
    const signer = generateKeyPairSync('ed25519');
    const config = make({ publicKeys: new PublicKeyRing([signer.publicKey]) });
    const seen: number[] = [];
    config.onChange((s) => seen.push(s.version));
    config.start();
    expect(seen).toEqual([]);
    expect(config.current.version).toBe(0);
    expect(config.current.core.drainGraceMs).toBe(DEFAULT_BASELINE.core.drainGraceMs);
    expect(config.status().lastRefusal).toMatchObject({ result: 'bad_signature', from: 'last-good snapshot', version: 7 });
    // A signed document still applies.
    expect(config.offer(signDocument(doc(1), signer.privateKey), 'test').result).toBe('applied');
  });

  it('a signed snapshot verifies again at start', () => {
    const signer = generateKeyPairSync('ed25519');
    fs.writeFileSync(path.join(dir, SNAPSHOT_FILE), signDocument(doc(9), signer.privateKey));
    const config = make({ publicKeys: new PublicKeyRing([signer.publicKey]) });
    config.start();
    expect(config.current.version).toBe(9);
  });

  it('an applied document is written to the snapshot; a refused one is not', async () => {
    const config = make();
    config.offer(doc(1, 'logLevel: warn\n'), 'test');
    config.offer(doc(2, 'defaultMaxAttempts: 0\n'), 'test');
    await config.flushSnapshot();
    expect(fs.readFileSync(path.join(dir, SNAPSHOT_FILE), 'utf8')).toBe(doc(1, 'logLevel: warn\n'));
  });

  it('a restart picks up where the last process left off', async () => {
    const first = make();
    first.start();
    first.offer(doc(4, 'logLevel: error\n'), 'test');
    await first.close();
    const second = make();
    second.start();
    expect(second.current.version).toBe(4);
    expect(second.current.logLevel).toBe('error');
  });

  it('close() is idempotent and waits for the snapshot write: afterwards the file holds the last applied text', async () => {
    const config = make();
    config.start();
    for (let v = 1; v <= 10; v++) config.offer(doc(v, `drainGraceMs: ${v}\n`), 'test');
    await Promise.all([config.close(), config.close()]);
    expect(fs.readFileSync(path.join(dir, SNAPSHOT_FILE), 'utf8')).toBe(doc(10, 'drainGraceMs: 10\n'));
    await expect(config.close()).resolves.toBeUndefined();
    expect(fs.readdirSync(dir)).toEqual([SNAPSHOT_FILE]);
  });

  it('without a data dir there is no snapshot and close() still resolves', async () => {
    const config = make({ dataDir: undefined });
    config.start();
    config.offer(doc(1), 'test');
    await config.close();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  describe('publish -> apply time', () => {
    function record(config: RuntimeConfig): { result: Decision['result']; origin: string; ms: number | undefined }[] {
      const out: { result: Decision['result']; origin: string; ms: number | undefined }[] = [];
      config.onDecision((decision, origin, ms) => out.push({ result: decision.result, origin, ms }));
      return out;
    }

    it('onDecision receives now minus publishedAt for an applied document', () => {
      const config = make();
      const seen = record(config);
      config.offer(doc(1, `publishedAt: ${NOW_MS - 2_500}\n`), 'test');
      config.offer(doc(2, 'publishedAt: 2026-11-22T05:00:00+02:00\n'), 'test'); // 03:00:00Z, 10 s before NOW_MS
      config.offer(doc(3), 'test'); // no publishedAt
      config.offer(doc(3, `publishedAt: ${NOW_MS - 1}\n`), 'test'); // stale
      expect(seen).toEqual([
        { result: 'applied', origin: 'test', ms: 2_500 },
        { result: 'applied', origin: 'test', ms: 10_000 },
        { result: 'applied', origin: 'test', ms: undefined },
        { result: 'stale', origin: 'test', ms: undefined },
      ]);
    });

    it('a publishedAt in the future (clock skew) counts as 0, never negative', () => {
      const config = make();
      const seen = record(config);
      config.offer(doc(1, `publishedAt: ${NOW_MS + 60_000}\n`), 'test');
      expect(seen[0]?.ms).toBe(0);
    });

    it('none for the last-good snapshot', () => {
      fs.writeFileSync(path.join(dir, SNAPSHOT_FILE), doc(5, `publishedAt: ${NOW_MS - 3_600_000}\n`));
      const config = make();
      const seen = record(config);
      config.start();
      expect(seen).toEqual([{ result: 'applied', origin: 'last-good snapshot', ms: undefined }]);
    });
  });
});
