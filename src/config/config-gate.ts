import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_TOKENS, measureDocumentShape } from './document-shape';
import { decodeDocument, documentBytes, MAX_DOCUMENT_BYTES } from './document-text';
import { baselineSettings, compileRuntimeDocument, RuntimeSchemaError, type RuntimeBaseline, type RuntimeSettings } from './runtime-schema';
import type { PublicKeyRing } from './signature';

/**
 * What became of one delivered document:
 * - applied: valid, and newer than the version in force, which it replaced;
 * - stale: valid (or at least well signed) but not newer than the version in force;
 * - invalid: too large, not strict UTF-8, a control character, nested too
 *   deep, not YAML/JSON, or fails the schema or a range;
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
  /** The very same text was refused before: this is that refusal again, and it was not parsed again. */
  repeated: boolean;
}

export { MAX_DOCUMENT_BYTES };

/** How many refused texts are remembered (by SHA-256), so none of them is ever parsed twice. */
export const REFUSED_TEXTS_REMEMBERED = 64;

type Refusal = Pick<Decision, 'result' | 'reason' | 'version'>;

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
  /**
   * Refusals by SHA-256 of the raw text, oldest first. Every refusal is
   * final: the baseline and the keys never change, and the version in
   * force only grows, so a stale text stays stale.
   */
  private readonly refused = new Map<string, Refusal>();

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

  /**
   * Decides one delivered document: raw bytes (decoded here, strictly) or a
   * text some client already decoded; null or undefined when it was deleted.
   */
  offer(raw: string | Uint8Array | null | undefined): Decision {
    const previous = this.settings;
    const decide = (refusal: Refusal, repeated = false): Decision => ({ ...refusal, settings: previous, previous, repeated });
    if (raw === null || raw === undefined) return decide(EMPTY);
    // Size first: it costs nothing, and nothing larger is ever hashed, decoded or scanned.
    const bytes = documentBytes(raw);
    if (bytes > MAX_DOCUMENT_BYTES) return decide({ result: 'invalid', reason: `the document is larger than the limit of ${MAX_DOCUMENT_BYTES} bytes`, version: undefined });
    const hash = createHash('sha256').update(raw).digest('hex');
    const before = this.refused.get(hash);
    if (before !== undefined) return decide(before, true);
    const decoded = decodeDocument(raw);
    if (!decoded.ok) return decide(this.remember(hash, { result: 'invalid', reason: decoded.reason, version: undefined }));
    const text = decoded.text;
    if (text.trim() === '') return decide(EMPTY);
    if (text === this.text) return decide({ result: 'duplicate', reason: `version ${previous.version} is already in force`, version: previous.version });
    const refusal = this.check(text, previous);
    if ('result' in refusal) return decide(this.remember(hash, refusal));
    this.settings = refusal.next;
    this.text = text;
    return { result: 'applied', reason: '', version: refusal.next.version, settings: refusal.next, previous, repeated: false };
  }

  /** Everything that may refuse a decoded, non-empty text, cheapest first; or the settings it puts in force. */
  private check(text: string, previous: RuntimeSettings): Refusal | { next: RuntimeSettings } {
    const verified = this.keys.verify(text);
    if (!verified.ok) return { result: 'bad_signature', reason: verified.reason, version: peekVersion(text) };
    // The parser composes nested nodes recursively, at ~4 µs a token: measure both first.
    const shape = measureDocumentShape(verified.body);
    if (shape.depth > MAX_DOCUMENT_DEPTH) return { result: 'invalid', reason: `nested more than ${MAX_DOCUMENT_DEPTH} levels deep`, version: undefined };
    if (shape.tokens > MAX_DOCUMENT_TOKENS) return { result: 'invalid', reason: `more than ${MAX_DOCUMENT_TOKENS} YAML tokens (keys, values, punctuation); a runtime document is a few hundred`, version: undefined };
    let value: unknown;
    try {
      value = parseYaml(verified.body, { maxAliasCount: 16, prettyErrors: false });
    } catch (err) {
      return { result: 'invalid', reason: `not YAML or JSON: ${(err as Error).message.split('\n')[0]}`, version: undefined };
    }
    let next: RuntimeSettings;
    try {
      next = compileRuntimeDocument(value, this.baseline);
    } catch (err) {
      if (err instanceof RuntimeSchemaError) return { result: 'invalid', reason: err.message, version: peekVersion(value) };
      throw err;
    }
    if (next.version <= previous.version) {
      return { result: 'stale', reason: `version ${next.version} is not newer than version ${previous.version} in force`, version: next.version };
    }
    return { next };
  }

  private remember(hash: string, refusal: Refusal): Refusal {
    if (this.refused.size >= REFUSED_TEXTS_REMEMBERED) this.refused.delete(this.refused.keys().next().value as string);
    this.refused.set(hash, refusal);
    return refusal;
  }
}

const EMPTY: Refusal = { result: 'empty', reason: 'the document is missing or empty; the config in force stays', version: undefined };

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
