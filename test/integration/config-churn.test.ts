import * as crypto from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Decision, OfferResult } from '../../src/config/config-gate';
import type { ConfigSource } from '../../src/config/config-source';
import { FileSource } from '../../src/config/file-source';
import { NacosSource } from '../../src/config/nacos-source';
import { parseNacosUrl } from '../../src/config/nacos-url';
import { RuntimeConfig } from '../../src/config/runtime-config';
import { DEFAULT_BASELINE } from '../../src/config/runtime-schema';
import { PublicKeyRing, signDocument } from '../../src/config/signature';
import { seededRandom } from '../support/core-harness';
import { NacosTestServer } from '../support/nacos-test-server';
import { eventually } from '../support/server-harness';

/**
 * 10,000 runtime documents (newer valid, stale, schema-invalid and badly
 * signed) delivered concurrently and out of order: by 16 asynchronous
 * deliverers calling the config directly, and through a real Nacos
 * subscription and a watched file at the same time. An oracle replays the
 * decisions in the order they were made and checks each against the rules.
 */
type Kind = 'valid' | 'invalid' | 'bad_signature';
interface Generated {
  kind: Kind;
  version: number;
}

const TOTAL = 10_000;
const DATA_ID = 'zonal-churn';

/** Two sources at once: Nacos and a file, each delivering whatever it sees. */
class BothSources implements ConfigSource {
  readonly description = 'nacos+file';
  constructor(private readonly sources: ConfigSource[]) {}
  start(deliver: (document: Uint8Array | string | null) => void): void {
    for (const s of this.sources) s.start(deliver);
  }
  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.close()));
  }
}

describe('config churn', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('10,000 concurrent out-of-order updates: every newest valid one applied, nothing invalid ever applied, counters add up', async () => {
    const random = seededRandom(20261122);
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
    const stranger = crypto.generateKeyPairSync('ed25519').privateKey;
    const byText = new Map<string, Generated>();
    const docs: string[] = [];
    let maxValidVersion = 0;
    for (let i = 0; i < TOTAL; i++) {
      const roll = random();
      // Versions grow with i but collide and jump around on purpose, so
      // newer, equal (other content) and older versions all occur.
      const version = Math.max(1, Math.floor(i / 2) + Math.floor((random() - 0.5) * 400));
      const body = stringify({ version, drainGraceMs: 1_000 + i, keepalive: { baseIdleMs: 5_000 + (i % 97) }, slo: { pairs: { 'a->b': { p99Ms: 10 + (i % 50) } } } });
      let text: string;
      let kind: Kind;
      if (roll < 0.5) {
        kind = 'valid';
        text = signDocument(body, privateKey);
        maxValidVersion = Math.max(maxValidVersion, version);
      } else if (roll < 0.7) {
        kind = 'invalid';
        const broken = [`version: ${version}\ndrainGraceMs: -${i + 1}\n`, `version: ${version}\nkeepalive: { lbIdleWindowMS: ${i} }\n`, `version: ${version}\n: [unclosed ${i}\n`, `version: ${version}.5\n# ${i}\n`];
        text = signDocument(broken[i % broken.length]!, privateKey);
      } else {
        kind = 'bad_signature';
        const variant = i % 3;
        text = variant === 0 ? signDocument(body, stranger) : variant === 1 ? body : signDocument(body, privateKey).replace(`drainGraceMs: ${1_000 + i}`, `drainGraceMs: ${2_000 + i}`);
      }
      byText.set(text, { kind, version });
      docs.push(text);
    }

    const dir = mkdtempSync(path.join(tmpdir(), 'zonal-churn-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const nacos = await NacosTestServer.start();
    cleanups.push(() => nacos.close());
    const file = path.join(dir, 'runtime.yaml');
    const config = new RuntimeConfig({
      baseline: DEFAULT_BASELINE,
      source: new BothSources([new NacosSource(parseNacosUrl(`nacos://${nacos.address}/${DATA_ID}`, {})), new FileSource(file)]),
      dataDir: path.join(dir, 'data'),
      publicKeys: new PublicKeyRing([publicKey]),
    });
    cleanups.push(() => config.close());

    // The oracle: every decision, in the order the gate made them.
    const decisions: { text: string | null; decision: Decision }[] = [];
    const decide = config.offer.bind(config);
    config.offer = (document, origin) => {
      const decision = decide(document, origin);
      // The file source delivers bytes; every generated document is valid UTF-8.
      const text = document instanceof Uint8Array ? Buffer.from(document).toString('utf8') : document;
      decisions.push({ text: text ?? null, decision });
      return decision;
    };
    const appliedVersions: number[] = [];
    config.onChange((settings) => appliedVersions.push(settings.version));
    config.start();

    // Delivery: 16 direct deliverers, one Nacos publisher and one file
    // writer, all at once, in an order shuffled within a sliding window of
    // about 500 documents (on top of the interleaving of the deliverers).
    const order = docs.map((_, i) => ({ i, key: i + random() * 500 })).sort((a, b) => a.key - b.key).map((e) => e.i);
    let next = 0;
    const take = (): string | undefined => (next < order.length ? docs[order[next++]!] : undefined);
    const pause = (): Promise<void> => {
      const r = random();
      return r < 0.4 ? Promise.resolve() : r < 0.8 ? new Promise((resolve) => setImmediate(resolve)) : new Promise((resolve) => setTimeout(resolve, 0));
    };
    let viaNacos = 0;
    let viaFile = 0;
    /** Documents certain to be decided: every direct one, and the last one published to Nacos and written to the file. */
    const certain = new Set<string>();
    const direct = Array.from({ length: 16 }, async (_, n) => {
      for (let text = take(); text !== undefined; text = take()) {
        certain.add(text);
        await pause();
        config.offer(text, `deliverer-${n}`);
      }
    });
    const throughNacos = (async () => {
      for (let text = take(); text !== undefined; text = take()) {
        nacos.publish(DATA_ID, 'DEFAULT_GROUP', text);
        viaNacos += 1;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    const throughFile = (async () => {
      for (let text = take(); text !== undefined; text = take()) {
        writeFileSync(`${file}.tmp`, text);
        renameSync(`${file}.tmp`, file);
        viaFile += 1;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const t0 = performance.now();
    await Promise.all([...direct, throughNacos, throughFile]);
    // Let the last Nacos and file deliveries land.
    const lastNacos = nacos.get(DATA_ID, 'DEFAULT_GROUP');
    const lastFile = readFileSync(file, 'utf8');
    for (const text of [lastNacos, lastFile]) if (text !== undefined) certain.add(text);
    await eventually(() => decisions.some((d) => d.text === lastNacos) && decisions.some((d) => d.text === lastFile), 10_000, 'the last Nacos and file documents to arrive');
    const elapsedMs = performance.now() - t0;

    // Replay the rules over the decisions in the order they were made.
    let inForceVersion = 0;
    let inForceText: string | undefined;
    let correct = 0;
    const expectedCounts: Record<OfferResult, number> = { applied: 0, stale: 0, invalid: 0, bad_signature: 0, empty: 0, duplicate: 0 };
    const wrong: string[] = [];
    for (const { text, decision } of decisions) {
      let expected: OfferResult;
      if (text === null || text.trim() === '') expected = 'empty';
      else if (text === inForceText) expected = 'duplicate';
      else {
        const meta = byText.get(text);
        if (meta === undefined) throw new Error('a delivered text that was never generated');
        expected = meta.kind === 'valid' ? (meta.version > inForceVersion ? 'applied' : 'stale') : meta.kind;
        if (expected === 'applied') {
          inForceVersion = meta.version;
          inForceText = text;
        }
      }
      expectedCounts[expected] += 1;
      if (decision.result === expected) correct += 1;
      else if (wrong.length < 5) wrong.push(`${expected} expected, ${decision.result} decided: ${decision.reason}`);
    }
    const total = decisions.length;
    const arrivedValid = decisions.filter((d) => d.text !== null && byText.get(d.text)?.kind === 'valid').length;
    console.log(
      `churn: ${TOTAL} documents, ${total} decisions in ${elapsedMs.toFixed(0)} ms (${viaNacos} published to Nacos, ${viaFile} written to the file, the rest from 16 direct deliverers); ` +
        `${arrivedValid} valid arrivals: ${expectedCounts.applied} applied, ${expectedCounts.stale} stale; ${expectedCounts.invalid} invalid, ${expectedCounts.bad_signature} bad signature, ` +
        `${expectedCounts.empty} empty, ${expectedCounts.duplicate} duplicate. Decisions matching the rules: ${correct}/${total} = ${((100 * correct) / total).toFixed(3)} % (seed article: 99.997 %)`,
    );
    expect(wrong).toEqual([]);
    expect(correct).toBe(total);
    // Every document from the direct deliverers was decided exactly once.
    expect(decisions.filter((d) => d.text !== null).length).toBeGreaterThanOrEqual(TOTAL - viaNacos - viaFile);
    // Counters add up, and match the oracle.
    expect(config.resultCounts).toEqual(expectedCounts);
    expect(Object.values(config.resultCounts).reduce((a, b) => a + b, 0)).toBe(total);
    // Listeners saw each applied version once, in increasing order; each came from a valid document (the oracle above).
    expect(appliedVersions).toHaveLength(expectedCounts.applied);
    expect(appliedVersions).toEqual([...appliedVersions].sort((a, b) => a - b));
    expect(new Set(appliedVersions).size).toBe(appliedVersions.length);
    // The final state is the highest valid version that arrived, and it is what the snapshot holds.
    const highestArrived = Math.max(...decisions.filter((d) => d.text !== null && byText.get(d.text)?.kind === 'valid').map((d) => byText.get(d.text!)!.version));
    expect(config.current.version).toBe(highestArrived);
    // A document published to Nacos or written to the file may be replaced
    // before it is read (polls after quick answers are paced; a file is read
    // once stable), so only the certain ones bound the final version.
    const highestCertain = Math.max(...[...certain].filter((t) => byText.get(t)?.kind === 'valid').map((t) => byText.get(t)!.version));
    expect(highestArrived).toBeGreaterThanOrEqual(highestCertain);
    expect(highestArrived).toBeLessThanOrEqual(maxValidVersion);
    await config.flushSnapshot();
    expect(readFileSync(path.join(dir, 'data', 'runtime-config.last-good'), 'utf8')).toBe(inForceText);
  }, 120_000);
});
