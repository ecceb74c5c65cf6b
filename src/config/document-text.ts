/**
 * The text of a runtime document, checked before anything parses it.
 *
 * - Size: at most MAX_DOCUMENT_BYTES. Parsing YAML costs about 1 ms per KiB
 *   on the event loop, so this bound is what keeps one document's stall to
 *   a few milliseconds (figures in docs/configuration.md).
 * - Encoding: bytes are decoded as strict UTF-8; invalid bytes are refused,
 *   never replaced. A text that was decoded elsewhere (the Nacos client
 *   decodes its answers itself) is refused if it holds U+FFFD, the mark
 *   lossy decoding leaves where the invalid bytes were.
 * - Characters: control characters other than tab, LF and CR (C0, DEL and
 *   C1) are refused anywhere, comments included.
 */
export const MAX_DOCUMENT_BYTES = 16 * 1024;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Control characters other than tab, LF and CR, and U+FFFD. */
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufffd]/;

export type DecodedDocument = { ok: true; text: string } | { ok: false; reason: string };

/** The raw document's size in bytes (a string counts as its UTF-8 encoding). */
export function documentBytes(raw: string | Uint8Array): number {
  return typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.byteLength;
}

/** Decodes `raw` strictly and checks its characters; the size is checked apart (documentBytes), before hashing. */
export function decodeDocument(raw: string | Uint8Array): DecodedDocument {
  let text: string;
  if (typeof raw === 'string') text = raw;
  else {
    try {
      text = strictUtf8.decode(raw);
    } catch {
      return { ok: false, reason: `not valid UTF-8 at byte ${firstInvalidUtf8Byte(raw)}` };
    }
  }
  const match = FORBIDDEN.exec(text);
  if (match !== null) {
    const at = positionOf(text, match.index);
    const code = `U+${(match[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
    const what = match[0] === '\ufffd' ? `${code} (the mark of invalid UTF-8 replaced by a lossy decoder)` : `the control character ${code}`;
    return { ok: false, reason: `${what} at line ${at.line}, column ${at.column}; only tab, LF and CR are allowed` };
  }
  return { ok: true, text };
}

function positionOf(text: string, index: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) {
    line += 1;
    lineStart = i + 1;
  }
  return { line, column: index - lineStart + 1 };
}

/** Offset of the first byte that does not start a valid UTF-8 sequence (for the message only). */
function firstInvalidUtf8Byte(bytes: Uint8Array): number {
  let lo = 0;
  let hi = bytes.length;
  // The longest valid prefix, found by bisection over the strict decoder.
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    try {
      strictUtf8.decode(bytes.subarray(0, mid));
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}
