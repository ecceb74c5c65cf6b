import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { NAME_PATTERN } from '../core/task-fields';
import type { TokenBucketLimits } from '../core/token-bucket';
import { TOKEN_PATTERN, tokenDigest } from './token';

export { TOKEN_PATTERN, tokenDigest };

/**
 * The access policy of a dispatcher (`--access-policy FILE`, YAML or JSON;
 * docs/security.md): who may call it, known by a bearer token or a client
 * certificate's SPIFFE URI SAN, which queues each may produce to (Submit,
 * GetTask, WatchTask, CancelTask) and work (Connect), and the admission
 * limits. Parsing and matching are pure; the file is read by
 * `loadAccessPolicy` and watched by `watchAccessPolicy` (policy-file.ts).
 *
 * Tokens never sit in the policy: it holds their SHA-256 (`tokenSha256`),
 * or names a file the token is read from (`tokenFile`), which is hashed at
 * once and dropped.
 */

/** A queue grant: a queue name, `prefix*`, or `*` for every queue. */
const QUEUE_GRANT = /^(\*|[A-Za-z0-9._:\-/]{1,128}\*?)$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Tokens are compared against every identity's digest at each call: a thousand take about 0.1 ms. */
const MAX_IDENTITIES = 1_000;
const MAX_GRANTS = 1_000;

const grants = z.array(z.string().regex(QUEUE_GRANT, 'a queue grant is a queue name, "prefix*" or "*"')).max(MAX_GRANTS).default([]);
const rate = z.number().positive().max(10_000_000);
const burst = z.number().int().min(1).max(100_000_000);
const streams = z.number().int().min(1).max(1_000_000);

const identitySchema = z
  .object({
    name: z.string().regex(NAME_PATTERN, `a name must match ${NAME_PATTERN}`),
    tokenSha256: z.union([z.string(), z.array(z.string()).max(16)]).optional(),
    tokenFile: z.union([z.string().min(1), z.array(z.string().min(1)).max(16)]).optional(),
    spiffeId: z.union([z.string(), z.array(z.string()).max(16)]).optional(),
    produce: grants,
    work: grants,
    submitPerSec: rate.optional(),
    submitBurst: burst.optional(),
    maxStreams: streams.optional(),
  })
  .strict();

const policySchema = z
  .object({
    version: z.literal(1).default(1),
    identities: z.array(identitySchema).max(MAX_IDENTITIES).default([]),
    anonymous: z.object({ produce: grants, work: grants, submitPerSec: rate.optional(), submitBurst: burst.optional(), maxStreams: streams.optional() }).strict().optional(),
    limits: z
      .object({
        submitPerSec: rate.optional(),
        submitBurst: burst.optional(),
        maxStreamsPerIdentity: streams.optional(),
        maxQueuedPerQueue: z.number().int().min(1).max(1_000_000_000).optional(),
        queues: z.record(z.string().regex(NAME_PATTERN), z.object({ maxQueued: z.number().int().min(1).max(1_000_000_000) }).strict()).optional(),
      })
      .strict()
      .default({}),
  })
  .strict();

export type AccessPolicyDocument = z.input<typeof policySchema>;

/** What one caller may do, as the policy compiled it. */
export interface Principal {
  /** The identity's name in the policy (`anonymous` for callers with neither token nor certificate); in logs and metrics. */
  readonly name: string;
  readonly produce: QueueMatcher;
  readonly work: QueueMatcher;
  /** Submitted tasks per second this identity may send; undefined: no limit. */
  readonly submitRate: TokenBucketLimits | undefined;
  /** Most worker streams open at once; Infinity: no limit. */
  readonly maxStreams: number;
}

export interface CompiledAccessPolicy {
  /** SHA-256 of each known token, with its identity (scanned whole at each check: access-guard.ts). */
  readonly tokens: readonly { readonly digest: Buffer; readonly principal: Principal }[];
  /** SPIFFE ID (the client certificate's URI SAN), to its identity. */
  readonly bySpiffeId: ReadonlyMap<string, Principal>;
  /** Callers that present neither; undefined refuses them. */
  readonly anonymous: Principal | undefined;
  /** Most tasks waiting (PENDING) in `queue` before submits to it are refused; Infinity: no cap. */
  maxQueued(queue: string): number;
  /** Whether any queue has a cap (the guard reads queue depths only then). */
  readonly capsQueues: boolean;
  /** The token files it read (watched with the policy file). */
  readonly tokenFiles: readonly string[];
}

/** Matches queue names against a list of grants. */
export class QueueMatcher {
  private readonly exact: ReadonlySet<string>;
  private readonly prefixes: readonly string[];
  readonly all: boolean;

  constructor(readonly grants: readonly string[]) {
    this.all = grants.includes('*');
    this.exact = new Set(grants.filter((g) => !g.endsWith('*')));
    this.prefixes = grants.filter((g) => g.endsWith('*') && g !== '*').map((g) => g.slice(0, -1));
  }

  allows(queue: string): boolean {
    return this.all || this.exact.has(queue) || this.prefixes.some((p) => queue.startsWith(p));
  }

  describe(): string {
    return this.grants.length === 0 ? 'no queue' : this.grants.join(', ');
  }
}

/** The policy when none is configured (and no TLS): anyone may do anything, without limits. */
export const OPEN_PRINCIPAL: Principal = { name: 'anonymous', produce: new QueueMatcher(['*']), work: new QueueMatcher(['*']), submitRate: undefined, maxStreams: Infinity };


function list(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function rateOf(perSec: number | undefined, burstValue: number | undefined): TokenBucketLimits | undefined {
  if (perSec === undefined) return undefined;
  return { ratePerSec: perSec, burst: burstValue ?? Math.max(1, Math.ceil(perSec)) };
}

/** Reads a token file: the token is its content, trimmed of surrounding whitespace. */
export function readTokenFile(file: string): string {
  const token = fs.readFileSync(file, 'utf8').trim();
  if (!TOKEN_PATTERN.test(token)) throw new Error(`token file ${file} must hold one token of 16 to 4096 visible ASCII characters`);
  return token;
}

/**
 * Validates a parsed document and compiles it. `baseDir` resolves relative
 * `tokenFile` paths. Throws an Error that names the offending field (never a
 * token's value).
 */
export function compileAccessPolicy(document: unknown, baseDir: string): CompiledAccessPolicy {
  const parsed = policySchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`access policy: ${issue?.path.join('.') || '(top)'}: ${issue?.message ?? 'invalid'}`);
  }
  const doc = parsed.data;
  const limits = doc.limits;
  const byTokenDigest = new Map<string, Principal>();
  const bySpiffeId = new Map<string, Principal>();
  const names = new Set<string>();
  const tokenFiles: string[] = [];
  doc.identities.forEach((entry, i) => {
    const where = `identities[${i}] (${entry.name})`;
    if (names.has(entry.name) || entry.name === 'anonymous') throw new Error(`access policy: ${where}: the name is used twice (or is "anonymous", which is reserved)`);
    names.add(entry.name);
    const principal: Principal = {
      name: entry.name,
      produce: new QueueMatcher(entry.produce),
      work: new QueueMatcher(entry.work),
      submitRate: rateOf(entry.submitPerSec ?? limits.submitPerSec, entry.submitBurst ?? limits.submitBurst),
      maxStreams: entry.maxStreams ?? limits.maxStreamsPerIdentity ?? Infinity,
    };
    const digests = list(entry.tokenSha256).map((d) => d.toLowerCase());
    for (const digest of digests) if (!SHA256_HEX.test(digest)) throw new Error(`access policy: ${where}: tokenSha256 must be 64 hex digits (sha256sum of the token)`);
    for (const file of list(entry.tokenFile)) {
      const resolved = path.resolve(baseDir, file);
      tokenFiles.push(resolved);
      try {
        digests.push(tokenDigest(readTokenFile(resolved)));
      } catch (err) {
        throw new Error(`access policy: ${where}: tokenFile: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const spiffeIds = list(entry.spiffeId);
    for (const id of spiffeIds) if (!isSpiffeId(id)) throw new Error(`access policy: ${where}: spiffeId "${id.slice(0, 100)}" must be spiffe://<trust domain>/<path>`);
    if (digests.length === 0 && spiffeIds.length === 0) throw new Error(`access policy: ${where}: give a tokenSha256, a tokenFile or a spiffeId: an identity nobody can prove is of no use`);
    for (const digest of digests) {
      if (byTokenDigest.has(digest)) throw new Error(`access policy: ${where}: its token is also ${byTokenDigest.get(digest)!.name}'s; give each identity its own`);
      byTokenDigest.set(digest, principal);
    }
    for (const id of spiffeIds) {
      if (bySpiffeId.has(id)) throw new Error(`access policy: ${where}: spiffeId ${id} is also ${bySpiffeId.get(id)!.name}'s`);
      bySpiffeId.set(id, principal);
    }
  });
  const anon = doc.anonymous;
  const anonymous: Principal | undefined =
    anon === undefined
      ? undefined
      : {
          name: 'anonymous',
          produce: new QueueMatcher(anon.produce),
          work: new QueueMatcher(anon.work),
          submitRate: rateOf(anon.submitPerSec ?? limits.submitPerSec, anon.submitBurst ?? limits.submitBurst),
          maxStreams: anon.maxStreams ?? limits.maxStreamsPerIdentity ?? Infinity,
        };
  const queueCaps = new Map(Object.entries(limits.queues ?? {}).map(([queue, { maxQueued }]) => [queue, maxQueued]));
  const defaultCap = limits.maxQueuedPerQueue ?? Infinity;
  return {
    tokens: [...byTokenDigest].map(([digest, principal]) => ({ digest: Buffer.from(digest, 'hex'), principal })),
    bySpiffeId,
    anonymous,
    maxQueued: (queue) => queueCaps.get(queue) ?? defaultCap,
    capsQueues: queueCaps.size > 0 || defaultCap !== Infinity,
    tokenFiles,
  };
}

/** A SPIFFE ID: spiffe://trust-domain/path (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md). */
export function isSpiffeId(value: string): boolean {
  return /^spiffe:\/\/[a-z0-9._-]{1,255}(\/[A-Za-z0-9._\-/]*)?$/.test(value) && value.length <= 2048;
}

/** Reads and compiles a policy file (YAML or JSON). Throws with the file's name and the first problem. */
export function loadAccessPolicy(file: string): CompiledAccessPolicy {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read access policy ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseAccessPolicy(text, file);
}

export function parseAccessPolicy(text: string, file: string): CompiledAccessPolicy {
  let document: unknown;
  try {
    document = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new Error(`access policy ${file} is not YAML or JSON: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  // An empty file is most often one being written (or truncated by a failed write): refused, so a reload keeps
  // the last good policy instead of locking everyone out. A policy that admits nobody says so: `version: 1`.
  if (document === null || document === undefined) throw new Error(`access policy ${file} is empty (a file being written?); a policy that admits nobody is written "version: 1"`);
  try {
    return compileAccessPolicy(document, path.dirname(path.resolve(file)));
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
