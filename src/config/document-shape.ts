import { CST, Lexer } from 'yaml';

/**
 * Deepest nesting a runtime document may have. The schema needs 5 levels
 * (slo.pairs."a->b".p99Ms inside a flow map); the yaml package composes
 * nested nodes recursively and overflows the stack at about 1,000 levels,
 * after which V8 may abort the whole process. So nesting is measured, and
 * bounded, before the parser builds anything.
 */
export const MAX_DOCUMENT_DEPTH = 64;

/**
 * Most lexical tokens (keys, values, punctuation, spaces) a runtime
 * document may have. Composing costs the yaml package about 4 µs a token,
 * so this, not the byte size, is what bounds the event-loop stall of a
 * document that passes the lexer: a typical document has 100-300 tokens,
 * one slo pair in flow style about 15 (so about 65 pairs fit; pairs not
 * listed use slo.defaultP99Ms).
 */
export const MAX_DOCUMENT_TOKENS = 1_000;

export interface DocumentShape {
  /** An upper bound of the nesting depth (stops counting past the limit). */
  depth: number;
  /** Tokens counted (stops counting past the limit). */
  tokens: number;
}

const BLOCK_INDICATORS = new Set(['seq-item-ind', 'explicit-key-ind']);

/**
 * The size of a YAML/JSON text as the parser will see it: its token count
 * and an upper bound of its nesting depth, from the yaml
 * package's own lexer (a state machine: no recursion, constant memory), so
 * quotes, comments and block scalars are read exactly as the parser will
 * read them. Stops as soon as either passes its limit.
 *
 * - Flow collections (`[`, `{`) count one level each.
 * - Block collections: every nested block collection starts further right,
 *   except a sequence under a map key, which may start at the key's column,
 *   so each indentation level counts two; compact indicators on one line
 *   (`- - - x`, `? - x`) count one each.
 */
export function measureDocumentShape(text: string, limits = { depth: MAX_DOCUMENT_DEPTH, tokens: MAX_DOCUMENT_TOKENS }): DocumentShape {
  let tokens = 0;
  let flow = 0;
  let deepest = 0;
  const indents: number[] = [];
  let column = 0;
  let lineStart = true;
  let lineIndicators = 0;
  for (const token of new Lexer().lex(text)) {
    tokens += 1;
    if (tokens > limits.tokens) break;
    const type = CST.tokenType(token);
    if (type === 'flow-map-start' || type === 'flow-seq-start') flow += 1;
    else if ((type === 'flow-map-end' || type === 'flow-seq-end') && flow > 0) flow -= 1;
    if (flow === 0 || type === 'flow-map-start' || type === 'flow-seq-start') {
      if (lineStart && isContent(type, token)) {
        while (indents.length > 0 && (indents[indents.length - 1] ?? 0) > column) indents.pop();
        if (indents.length === 0 || (indents[indents.length - 1] ?? 0) < column) indents.push(column);
        lineStart = false;
      }
      if (type !== null && BLOCK_INDICATORS.has(type)) lineIndicators += 1;
    }
    const depth = 2 * indents.length + lineIndicators + flow;
    if (depth > deepest) {
      deepest = depth;
      if (deepest > limits.depth) break;
    }
    // Markers the lexer inserts (document, scalar) are not in the source.
    if (token.length === 1 && token.charCodeAt(0) < 0x20 && token !== '\n' && token !== '\t') continue;
    const newline = token.lastIndexOf('\n');
    if (newline === -1) column += token.length;
    else {
      column = token.length - newline - 1;
      if (type === 'newline' || flow === 0) {
        lineStart = true;
        lineIndicators = 0;
      }
    }
  }
  return { depth: deepest, tokens };
}

function isContent(type: string | null, token: string): boolean {
  if (type === 'space' || type === 'newline' || type === 'comment' || type === 'doc-mode' || type === 'scalar') return false;
  return !(token.length === 1 && token.charCodeAt(0) < 0x20);
}
