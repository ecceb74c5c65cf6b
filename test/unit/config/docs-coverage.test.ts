import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { RUNTIME_DOCUMENT_SCHEMA } from '../../../src/config/runtime-schema';

/** Every key of the runtime document is documented in docs/configuration.md, so the page stays true. */
function keyPaths(schema: z.ZodType, prefix = ''): string[] {
  let inner: z.ZodType = schema;
  while (inner instanceof z.ZodOptional) inner = inner.unwrap() as z.ZodType;
  if (!(inner instanceof z.ZodObject)) return [prefix];
  const out: string[] = [];
  for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) {
    const name = prefix === '' ? key : `${prefix}.${key}`;
    const paths = keyPaths(child, name);
    // Nested call.backoff.* is documented as one row.
    out.push(...(name === 'call.backoff' ? ['call.backoff.*'] : paths));
  }
  return out;
}

describe('docs/configuration.md', () => {
  const page = readFileSync(path.join(__dirname, '../../../docs/configuration.md'), 'utf8');
  const paths = keyPaths(RUNTIME_DOCUMENT_SCHEMA);

  it('finds the keys of the schema', () => {
    expect(paths).toContain('keepalive.lbIdleWindowMs');
    expect(paths).toContain('zoneSpilloverDelayMs');
    expect(paths.length).toBeGreaterThan(20);
  });

  it.each(paths)('documents %s in the key table', (key) => {
    expect(page).toContain(`| \`${key}\` |`);
  });
});
