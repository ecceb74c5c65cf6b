import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_TOKENS, measureDocumentShape } from '../../../src/config/document-shape';

const documentDepthBound = (text: string, depth = MAX_DOCUMENT_DEPTH): number => measureDocumentShape(text, { depth, tokens: Number.POSITIVE_INFINITY }).depth;

/** The real nesting depth of a parsed value (only for texts shallow enough to parse). */
function realDepth(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  const children = Object.values(value as Record<string, unknown>);
  return 1 + (children.length === 0 ? 0 : Math.max(...children.map(realDepth)));
}

const deepFlow = (n: number): string => `{"version": 2, "x": ${'['.repeat(n)}${']'.repeat(n)}}`;

describe('measureDocumentShape', () => {
  const shallow: Record<string, string> = {
    'flat YAML': 'version: 1\nlogLevel: info\n',
    'the documented example shape': 'version: 1\nkeepalive:\n  minIntervalMs: 500\nbackoff: { initialMs: 1000, multiplier: 2 }\nslo:\n  defaultP99Ms: 250\n  pairs:\n    "zone-a->zone-b": { p99Ms: 40 }\n    "c->d":\n      p99Ms: 3\n',
    JSON: '{"version": 2, "slo": {"pairs": {"a->b": {"p99Ms": 4}}}}',
    'a sequence under a map key at the same column': 'a:\n- b:\n  - c:\n    - d: 1\n',
    'compact sequences': 'x:\n  - - - - 1\n',
    'brackets inside quotes, comments and block scalars': 'a: [ "]]]]", [ \'x]\' , [ 1 ] ] ]\n# ]]]]] [[[[\nb: |\n  ]]]] [[[[\nc: "[[[["\n',
    'a multi-line plain scalar': 'a: one\n  \'two\n  ]]] three\nb: [1]\n',
  };
  for (const [name, text] of Object.entries(shallow)) {
    it(`is never below the real depth: ${name}`, () => {
      const bound = documentDepthBound(text);
      expect(bound).toBeGreaterThanOrEqual(realDepth(parse(text)));
      expect(bound).toBeLessThanOrEqual(MAX_DOCUMENT_DEPTH);
    });
  }

  it('closing brackets hidden in quoted strings do not pay for real opening ones', () => {
    // Each level opens one real bracket and closes one inside a string; a
    // count of raw brackets would see depth 0 here.
    const text = `x: ${`[ "]" `.repeat(100)}${']'.repeat(100)}\n`;
    expect(documentDepthBound(text, 1_000)).toBeGreaterThanOrEqual(100);
    const single = `x: ${`[ 'a]' `.repeat(100)}${']'.repeat(100)}\n`;
    expect(documentDepthBound(single, 1_000)).toBeGreaterThanOrEqual(100);
  });

  it('sees block nesting by indentation and by compact indicators', () => {
    const indented = `version: 2\nx:\n${Array.from({ length: 100 }, (_, i) => `${' '.repeat(i + 1)}a:`).join('\n')} 1\n`;
    expect(documentDepthBound(indented, 1_000)).toBeGreaterThanOrEqual(realDepth(parse(indented)));
    const compact = `x:\n  ${'- '.repeat(100)}1\n`;
    expect(documentDepthBound(compact, 1_000)).toBeGreaterThanOrEqual(100);
    const keys = `${'? '.repeat(100)}1\n`;
    expect(documentDepthBound(keys, 1_000)).toBeGreaterThanOrEqual(100);
  });

  it('counts tokens, and stops counting past the limit', () => {
    expect(measureDocumentShape('version: 1\n').tokens).toBeLessThan(10);
    const many = `x: [${'1,'.repeat(5_000)}1]\n`;
    expect(measureDocumentShape(many).tokens).toBe(MAX_DOCUMENT_TOKENS + 1);
  });

  it('stops early on the issue\'s 200,000-level document, in a few milliseconds', () => {
    const text = deepFlow(200_000);
    const started = performance.now();
    expect(measureDocumentShape(text).depth).toBeGreaterThan(MAX_DOCUMENT_DEPTH);
    // Generous bound for a loaded CI box; it stops after ~65 tokens.
    expect(performance.now() - started).toBeLessThan(200);
  });
});
