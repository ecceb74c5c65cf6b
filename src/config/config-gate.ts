import { parse as parseYaml } from 'yaml';
import { baselineSettings, compileRuntimeDocument, RuntimeSchemaError, type RuntimeBaseline, type RuntimeSettings } from './runtime-schema';
import type { PublicKeyRing } from './signature';

/**
 * What became of one delivered document:
 * - applied: valid, and newer than the version in force, which it replaced;
 * - stale: valid (or at least well signed) but not newer than the version in force;
 * - invalid: not YAML/JSON, or fails the schema or a range;
 * - bad_signature: unsigned, unknown key or wrong signature while public keys are configured;
 * - empty: deleted or blank: ignored, the config in force stays;
 * - duplicate: the very text in force, delivered again: harmless.
 */
export type OfferResult = 'applied' | 'stale' | 'invalid' | 'bad_signature' | 'empty' | 'duplicate';

export const OFFER_RESULTS: readonly OfferResult[] = ['applied', 'stale', 'invalid', 'bad_signature', 'empty', 'duplicate'];

export interface Decision {
  result: OfferResult;
  /** Why it was refused (empty when applied). */
  reason: string;
  /** The document's version, when it could be read. */
  version: number | undefined;
  /** The settings now in force (after this decision). */
  settings: RuntimeSettings;
  previous: RuntimeSettings;
}

/** Largest document accepted; a config is a few KiB, anything near this is a mistake. */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;

/**
 * Compare-and-set of the runtime settings: a document is applied only if it
 * verifies, parses, passes the schema and carries a version strictly greater
 * than the one in force. The decision is synchronous, so documents from any
 * number of concurrent deliveries are decided one at a time, and the version,
 * never the arrival order, picks the winner. Pure: no I/O, no clock.
 */
export class ConfigGate {
  private settings: RuntimeSettings;
  private text: string | undefined;

  constructor(
    private readonly baseline: RuntimeBaseline,
    private readonly keys: PublicKeyRing,
  ) {
    this.settings = baselineSettings(baseline);
  }

  get current(): RuntimeSettings {
    return this.settings;
  }

  /** The text of the document in force (undefined while on the baseline). */
  get currentText(): string | undefined {
    return this.text;
  }

  offer(text: string | null | undefined): Decision {
    const previous = this.settings;
    const refuse = (result: OfferResult, reason: string, version?: number): Decision => ({ result, reason, version, settings: previous, previous });
    if (text === null || text === undefined || text.trim() === '') return refuse('empty', 'the document is missing or empty; the config in force stays');
    if (text === this.text) return refuse('duplicate', `version ${previous.version} is already in force`, previous.version);
    if (Buffer.byteLength(text, 'utf8') > MAX_DOCUMENT_BYTES) return refuse('invalid', `the document is larger than ${MAX_DOCUMENT_BYTES} bytes`);
    const verified = this.keys.verify(text);
    if (!verified.ok) return refuse('bad_signature', verified.reason, peekVersion(text));
    let value: unknown;
    try {
      value = parseYaml(verified.body, { maxAliasCount: 16, prettyErrors: false });
    } catch (err) {
      return refuse('invalid', `not YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
    }
    let next: RuntimeSettings;
    try {
      next = compileRuntimeDocument(value, this.baseline);
    } catch (err) {
      if (err instanceof RuntimeSchemaError) return refuse('invalid', err.message, peekVersion(value));
      throw err;
    }
    if (next.version <= previous.version) {
      return refuse('stale', `version ${next.version} is not newer than version ${previous.version} in force`, next.version);
    }
    this.settings = next;
    this.text = text;
    return { result: 'applied', reason: '', version: next.version, settings: next, previous };
  }
}

/** The version a refused document claims, for logs only (never trusted). */
function peekVersion(value: unknown): number | undefined {
  if (typeof value === 'string') {
    const match = /^version:\s*(\d+)\s*$/m.exec(value) ?? /"version"\s*:\s*(\d+)/.exec(value);
    return match?.[1] === undefined ? undefined : Number(match[1]);
  }
  if (typeof value === 'object' && value !== null && 'version' in value) {
    const version = (value as { version: unknown }).version;
    return typeof version === 'number' ? version : undefined;
  }
  return undefined;
}
