import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { REFUSED_TEXTS_REMEMBERED } from '../../../src/config/config-gate';
import { MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_TOKENS } from '../../../src/config/document-shape';
import { MAX_DOCUMENT_BYTES } from '../../../src/config/document-text';
import { FILE_STABLE_MS } from '../../../src/config/file-source';
import { MAX_CONFIG_VERSION, RUNTIME_DOCUMENT_SCHEMA } from '../../../src/config/runtime-schema';

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

describe('docs/configuration.md states the limits the code enforces', () => {
  const page = readFileSync(path.join(__dirname, '../../../docs/configuration.md'), 'utf8');
  it.each([
    ['MAX_DOCUMENT_BYTES', `${MAX_DOCUMENT_BYTES / 1024} KiB (\`MAX_DOCUMENT_BYTES\`)`],
    ['MAX_DOCUMENT_DEPTH', `${MAX_DOCUMENT_DEPTH} levels (\`MAX_DOCUMENT_DEPTH\`)`],
    ['MAX_DOCUMENT_TOKENS', `${MAX_DOCUMENT_TOKENS.toLocaleString('en-US')} (\`MAX_DOCUMENT_TOKENS\`)`],
    ['MAX_CONFIG_VERSION', `1 to 10^${Math.log10(MAX_CONFIG_VERSION)} (\`MAX_CONFIG_VERSION\`)`],
    ['FILE_STABLE_MS', `**${FILE_STABLE_MS / 1000} s** apart\n(\`FILE_STABLE_MS\`)`],
    ['REFUSED_TEXTS_REMEMBERED', `the last ${REFUSED_TEXTS_REMEMBERED}\nrefused texts`],
  ])('%s', (_name, text) => {
    expect(page).toContain(text);
  });
});
