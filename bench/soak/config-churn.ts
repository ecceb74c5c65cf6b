/**
 * Config churn: the runtime config file every dispatcher follows (`--config
 * <file>`, docs/configuration.md) rewritten while the soak runs, as an
 * operator does (a temp file renamed over it), with valid changes of the live
 * keys and documents the dispatchers must refuse (unknown key, out of range,
 * wrong type, stale version, not YAML, keepalive caps that contradict, a
 * control character). Each document is complete: a valid one is the soak's
 * baseline with some keys changed.
 *
 * Invariant the verdict checks: a dispatcher only ever has a valid
 * document's version in force, and after the last write (the baseline again,
 * under a new version) every dispatcher converges to it.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { Random } from './random';

export interface WrittenDoc {
  version: number;
  valid: boolean;
  /** What was changed, or why it must be refused. */
  what: string;
}

/** The soak's own settings: short backoff, so re-queued tasks run again within seconds and the drain is quick. */
const BASELINE: Record<string, unknown> = {
  backoff: { initialMs: 200, multiplier: 2, maxMs: 4_000, jitter: 0.2 },
  logLevel: 'warn',
};

type Change = (r: Random, doc: Record<string, unknown>) => string;

const VALID_CHANGES: Change[] = [
  (r, d) => `zoneSpilloverDelayMs ${(d['zoneSpilloverDelayMs'] = r.int(0, 1_000))}`,
  (r, d) => {
    const backoff = { initialMs: r.int(100, 1_000), multiplier: 2, maxMs: r.int(2_000, 5_000), jitter: 0.2 };
    d['backoff'] = backoff;
    return `backoff ${backoff.initialMs}..${backoff.maxMs} ms`;
  },
  (r, d) => {
    const keepalive = { baseIdleMs: r.int(3_000, 8_000), minIntervalMs: r.int(300, 1_000) };
    d['keepalive'] = keepalive;
    return `keepalive baseIdleMs ${keepalive.baseIdleMs} minIntervalMs ${keepalive.minIntervalMs}`;
  },
  (r, d) => `drainGraceMs ${(d['drainGraceMs'] = r.int(2_000, 5_000))}`,
  (r, d) => `taskLeaseMs ${(d['taskLeaseMs'] = r.int(4_000, 10_000))}`,
  (r, d) => `maxSlotsPerSession ${(d['maxSlotsPerSession'] = r.pick([8, 16, 64, 10_000]))}`,
  (r, d) => `slo.defaultP99Ms ${((d['slo'] = { defaultP99Ms: r.int(100, 1_000) }) as { defaultP99Ms: number }).defaultP99Ms}`,
  (r, d) => `logLevel ${(d['logLevel'] = r.pick(['warn', 'error']))}`,
];

/** Each returns the document's text; `version` is a fresh one (the stale kind uses the version in force instead). */
const INVALID_DOCS: { what: string; text: (version: number, inForce: number) => string }[] = [
  { what: 'unknown key (taskLeaseMS)', text: (v) => stringify({ version: v, ...BASELINE, taskLeaseMS: 5_000 }) },
  { what: 'out of range (taskLeaseMs 100)', text: (v) => stringify({ version: v, ...BASELINE, taskLeaseMs: 100 }) },
  { what: 'wrong type (zoneSpilloverDelayMs "soon")', text: (v) => stringify({ version: v, ...BASELINE, zoneSpilloverDelayMs: 'soon' }) },
  { what: 'stale version (the one in force)', text: (_v, inForce) => stringify({ version: inForce, ...BASELINE, zoneSpilloverDelayMs: 7 }) },
  { what: 'not YAML', text: (v) => `version: [${v}\nbackoff: { initialMs: 200\n` },
  { what: 'keepalive cap below its minimum (lbIdleWindowMs 1000, minIntervalMs 1000)', text: (v) => stringify({ version: v, ...BASELINE, keepalive: { lbIdleWindowMs: 1_000, minIntervalMs: 1_000 } }) },
  { what: 'a control character', text: (v) => `version: ${v}\nlogLevel: warn\u0001\n` },
  { what: 'version above the bound (1e16)', text: () => 'version: 10000000000000000\nlogLevel: warn\n' },
];

export class ConfigChurn {
  private nextVersion = 1;
  private lastValid = 0;
  /** Versions of the valid documents written; a dispatcher may only ever report one of these (or 0, none yet). */
  readonly validVersions = new Set<number>([0]);
  readonly written: WrittenDoc[] = [];

  constructor(
    private readonly file: string,
    private readonly random: Random,
  ) {}

  get lastValidVersion(): number {
    return this.lastValid;
  }

  /** The baseline, under a new version (the first document, and the last: "restore"). */
  writeBaseline(): WrittenDoc {
    return this.writeValidDoc({ ...BASELINE }, 'baseline');
  }

  writeValidChange(): WrittenDoc {
    const doc: Record<string, unknown> = { ...BASELINE };
    const picks = new Set<Change>();
    const n = this.random.int(1, 3);
    while (picks.size < n) picks.add(this.random.pick(VALID_CHANGES));
    const what = [...picks].map((change) => change(this.random, doc)).join(', ');
    return this.writeValidDoc(doc, what);
  }

  writeInvalid(): WrittenDoc {
    const bad = this.random.pick(INVALID_DOCS);
    const version = this.nextVersion++;
    this.write(bad.text(version, this.lastValid));
    return this.record({ version, valid: false, what: bad.what });
  }

  private writeValidDoc(doc: Record<string, unknown>, what: string): WrittenDoc {
    const version = this.nextVersion++;
    this.write(stringify({ version, publishedAt: Date.now(), ...doc }));
    this.lastValid = version;
    this.validVersions.add(version);
    return this.record({ version, valid: true, what });
  }

  private write(text: string): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, this.file);
  }

  private record(doc: WrittenDoc): WrittenDoc {
    this.written.push(doc);
    return doc;
  }
}
