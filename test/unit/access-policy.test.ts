import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileAccessPolicy, isSpiffeId, loadAccessPolicy, parseAccessPolicy, QueueMatcher, tokenDigest, TOKEN_PATTERN } from '../../src/security/access-policy';

/** The policy file as an operator writes it: what it grants, and how a mistake in it is reported. */
describe('access policy', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'zonal-policy-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const TOKEN_A = 'token-a-0123456789abcdef';
  const TOKEN_OPS = 'ops-token-fedcba9876543210';
  const SECRET = 'this-is-a-secret-token-value-42';

  /** The first problem of a policy, as the operator would read it. */
  function problem(doc: unknown): string {
    try {
      compileAccessPolicy(doc, dir);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error(`policy was accepted: ${JSON.stringify(doc)}`);
  }

  it('tokenDigest is the sha256 hex of the token; tokens are 16..4096 visible ASCII characters', () => {
    expect(tokenDigest('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(TOKEN_PATTERN.test('a'.repeat(16))).toBe(true);
    expect(TOKEN_PATTERN.test('a'.repeat(4096))).toBe(true);
    expect(TOKEN_PATTERN.test('a'.repeat(15))).toBe(false);
    expect(TOKEN_PATTERN.test('a'.repeat(4097))).toBe(false);
    expect(TOKEN_PATTERN.test('a'.repeat(16) + ' b')).toBe(false);
    expect(TOKEN_PATTERN.test('a'.repeat(16) + '\n')).toBe(false);
    expect(TOKEN_PATTERN.test('é'.repeat(16))).toBe(false);
  });

  it('parses YAML: identities by token digest, token file and SPIFFE ID, with their grants and limits', () => {
    const tokenFile = path.join(dir, 'ops.token');
    writeFileSync(tokenFile, `  ${TOKEN_OPS}\n`);
    const yaml = [
      'version: 1',
      'identities:',
      '  - name: billing-api',
      `    tokenSha256: ${tokenDigest(TOKEN_A).toUpperCase()}`,
      '    produce: [billing, "billing-*"]',
      '    submitPerSec: 500',
      '    submitBurst: 1000',
      '  - name: billing-worker',
      '    spiffeId: [spiffe://prod.example/ns/billing/sa/worker, spiffe://prod.example/ns/billing/sa/worker2]',
      '    work: [billing]',
      '    maxStreams: 32',
      '  - name: ops',
      '    tokenFile: ops.token',
      '    produce: ["*"]',
      'limits:',
      '  submitPerSec: 2000',
      '  maxStreamsPerIdentity: 256',
      '  maxQueuedPerQueue: 1000',
      '  queues:',
      '    billing: { maxQueued: 50 }',
    ].join('\n');
    const policy = parseAccessPolicy(yaml, path.join(dir, 'policy.yaml'));

    expect(policy.tokens).toHaveLength(2);
    const byDigest = new Map(policy.tokens.map((t) => [t.digest.toString('hex'), t.principal]));
    // Upper-case hex is accepted and matched as the same digest.
    const billing = byDigest.get(tokenDigest(TOKEN_A))!;
    expect(billing.name).toBe('billing-api');
    expect(billing.produce.allows('billing')).toBe(true);
    expect(billing.produce.allows('billing-eu')).toBe(true);
    expect(billing.produce.allows('billing2')).toBe(false);
    expect(billing.produce.allows('other')).toBe(false);
    expect(billing.work.allows('billing')).toBe(false);
    expect(billing.submitRate).toEqual({ ratePerSec: 500, burst: 1000 });
    expect(billing.maxStreams).toBe(256);

    // The token file was read (trimmed) and hashed; the policy keeps its path to watch it.
    const ops = byDigest.get(tokenDigest(TOKEN_OPS))!;
    expect(ops.name).toBe('ops');
    expect(ops.produce.allows('anything/at:all')).toBe(true);
    // Inherited from limits: 2000/s, burst defaulting to the rate.
    expect(ops.submitRate).toEqual({ ratePerSec: 2000, burst: 2000 });
    expect(policy.tokenFiles).toEqual([tokenFile]);

    const worker = policy.bySpiffeId.get('spiffe://prod.example/ns/billing/sa/worker')!;
    expect(worker.name).toBe('billing-worker');
    expect(policy.bySpiffeId.get('spiffe://prod.example/ns/billing/sa/worker2')).toBe(worker);
    expect(worker.work.allows('billing')).toBe(true);
    expect(worker.produce.allows('billing')).toBe(false);
    expect(worker.maxStreams).toBe(32);

    expect(policy.anonymous).toBeUndefined();
    expect(policy.capsQueues).toBe(true);
    expect(policy.maxQueued('billing')).toBe(50);
    expect(policy.maxQueued('other')).toBe(1000);
  });

  it('parses JSON too; without limits nothing is capped, and anonymous gets only what it is granted', () => {
    const json = JSON.stringify({ anonymous: { produce: ['public-*'], work: [] } });
    const policy = parseAccessPolicy(json, path.join(dir, 'policy.json'));
    expect(policy.tokens).toEqual([]);
    expect(policy.anonymous).toMatchObject({ name: 'anonymous', submitRate: undefined, maxStreams: Infinity });
    expect(policy.anonymous!.produce.allows('public-x')).toBe(true);
    expect(policy.anonymous!.produce.allows('private')).toBe(false);
    expect(policy.anonymous!.work.allows('public-x')).toBe(false);
    expect(policy.capsQueues).toBe(false);
    expect(policy.maxQueued('public-x')).toBe(Infinity);
  });

  it('an empty file (or only comments) is refused: it is most often a file being written, and a reload keeps the last good policy', () => {
    for (const text of ['', '  \n', '# being written\n']) {
      expect(() => parseAccessPolicy(text, path.join(dir, 'empty.yaml'))).toThrow(/empty\.yaml is empty \(a file being written\?\); a policy that admits nobody is written "version: 1"/);
    }
  });

  it('"version: 1" alone is a policy that refuses everyone', () => {
    const policy = parseAccessPolicy('version: 1\n', path.join(dir, 'nobody.yaml'));
    expect(policy.tokens).toEqual([]);
    expect(policy.bySpiffeId.size).toBe(0);
    expect(policy.anonymous).toBeUndefined();
  });

  it('grants: an exact name, a prefix ending in *, or * alone; none grants nothing', () => {
    const m = new QueueMatcher(['a', 'b-*']);
    expect(m.allows('a')).toBe(true);
    expect(m.allows('a2')).toBe(false);
    expect(m.allows('b-')).toBe(true);
    expect(m.allows('b-1')).toBe(true);
    expect(m.allows('b')).toBe(false);
    expect(m.all).toBe(false);
    expect(m.describe()).toBe('a, b-*');
    expect(new QueueMatcher(['*']).allows('x')).toBe(true);
    expect(new QueueMatcher([]).allows('x')).toBe(false);
    expect(new QueueMatcher([]).describe()).toBe('no queue');
    expect(problem({ identities: [{ name: 'x', tokenSha256: tokenDigest(TOKEN_A), produce: ['a*b'] }] })).toMatch(/identities\.0\.produce\.0: a queue grant is a queue name, "prefix\*" or "\*"/);
    expect(problem({ identities: [{ name: 'x', tokenSha256: tokenDigest(TOKEN_A), work: ['has space'] }] })).toMatch(/identities\.0\.work\.0/);
  });

  it('SPIFFE IDs: spiffe://<trust domain>/<path>', () => {
    expect(isSpiffeId('spiffe://test.zonal/worker-a')).toBe(true);
    expect(isSpiffeId('spiffe://test.zonal')).toBe(true);
    expect(isSpiffeId('https://test.zonal/worker-a')).toBe(false);
    expect(isSpiffeId('spiffe://Upper.Case/x')).toBe(false);
    expect(isSpiffeId('spiffe://a/b?c')).toBe(false);
    expect(isSpiffeId(`spiffe://a/${'x'.repeat(2100)}`)).toBe(false);
  });

  it('each mistake is refused with the field that holds it', () => {
    const digest = tokenDigest(TOKEN_A);
    const cases: [unknown, RegExp][] = [
      [{ version: 2 }, /access policy: version: /],
      [{ identities: [{ name: 'x', tokenSha256: digest, produce: ['a'], extra: 1 }] }, /identities\.0: .*extra/],
      [{ identities: [{ name: 'x', tokenSha256: 'abc', produce: ['a'] }] }, /identities\[0\] \(x\): tokenSha256 must be 64 hex digits/],
      [{ identities: [{ name: 'x', produce: ['a'] }] }, /identities\[0\] \(x\): give a tokenSha256, a tokenFile or a spiffeId/],
      [{ identities: [{ name: 'x', spiffeId: 'https://x/y', produce: ['a'] }] }, /identities\[0\] \(x\): spiffeId "https:\/\/x\/y" must be spiffe:\/\//],
      [{ identities: [{ name: 'x', tokenSha256: digest }, { name: 'x', spiffeId: 'spiffe://a/b' }] }, /identities\[1\] \(x\): the name is used twice/],
      [{ identities: [{ name: 'anonymous', tokenSha256: digest }] }, /identities\[0\] \(anonymous\): .*reserved/],
      [{ identities: [{ name: 'x', tokenSha256: digest }, { name: 'y', tokenSha256: digest.toUpperCase() }] }, /identities\[1\] \(y\): its token is also x's/],
      [{ identities: [{ name: 'x', spiffeId: 'spiffe://a/b' }, { name: 'y', spiffeId: 'spiffe://a/b' }] }, /identities\[1\] \(y\): spiffeId spiffe:\/\/a\/b is also x's/],
      [{ identities: [{ name: 'has space', tokenSha256: digest }] }, /identities\.0\.name: a name must match/],
      [{ identities: [{ name: 'x', tokenSha256: digest, submitPerSec: -1 }] }, /identities\.0\.submitPerSec/],
      [{ identities: [{ name: 'x', tokenSha256: digest, submitBurst: 0.5 }] }, /identities\.0\.submitBurst/],
      [{ identities: [{ name: 'x', tokenSha256: digest, maxStreams: 0 }] }, /identities\.0\.maxStreams/],
      [{ limits: { maxQueuedPerQueue: 0 } }, /limits\.maxQueuedPerQueue/],
      [{ limits: { queues: { q: { maxQueued: -5 } } } }, /limits\.queues\.q\.maxQueued/],
      [{ limits: { burst: 3 } }, /limits: .*burst/],
      [{ anonymous: { produce: ['*'], name: 'x' } }, /anonymous: .*name/],
      [{ identities: {} }, /identities: /],
    ];
    for (const [doc, expected] of cases) expect(problem(doc), JSON.stringify(doc)).toMatch(expected);
  });

  it('never repeats a token in its errors: a raw token pasted in the policy, or a bad token file', () => {
    // A plausible mistake: the token itself where its digest belongs, or under a key of its own.
    const asDigest = problem({ identities: [{ name: 'x', tokenSha256: SECRET, produce: ['a'] }] });
    expect(asDigest).toMatch(/tokenSha256 must be 64 hex digits/);
    expect(asDigest).not.toContain(SECRET);
    const asKey = problem({ identities: [{ name: 'x', token: SECRET, produce: ['a'] }] });
    expect(asKey).toMatch(/identities\.0/);
    expect(asKey).toContain('token');
    expect(asKey).not.toContain(SECRET);
    const yamlKey = (() => {
      try {
        parseAccessPolicy(`identities:\n  - name: x\n    token: ${SECRET}\n`, path.join(dir, 'p.yaml'));
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    })();
    expect(yamlKey).toContain('p.yaml');
    expect(yamlKey).not.toContain(SECRET);

    // A token file whose content is not a token (too short, or with a space in it).
    const short = path.join(dir, 'short.token');
    writeFileSync(short, 'short-secret\n');
    const shortProblem = problem({ identities: [{ name: 'x', tokenFile: short }] });
    expect(shortProblem).toMatch(/identities\[0\] \(x\): tokenFile: token file .*short\.token must hold one token/);
    expect(shortProblem).not.toContain('short-secret');
    const spaced = path.join(dir, 'spaced.token');
    writeFileSync(spaced, `${SECRET} ${SECRET}\n`);
    const spacedProblem = problem({ identities: [{ name: 'x', tokenFile: spaced }] });
    expect(spacedProblem).toMatch(/tokenFile/);
    expect(spacedProblem).not.toContain(SECRET);

    const missing = problem({ identities: [{ name: 'x', tokenFile: 'nowhere.token' }] });
    expect(missing).toMatch(/identities\[0\] \(x\): tokenFile: .*nowhere\.token/);
  });

  it('a relative tokenFile is read from the policy file\'s directory', () => {
    const sub = path.join(dir, 'sub');
    mkdirSync(sub, { recursive: true });
    writeFileSync(path.join(sub, 'w.token'), `${TOKEN_A}\n`);
    const file = path.join(sub, 'policy.yaml');
    writeFileSync(file, 'identities:\n  - name: w\n    tokenFile: w.token\n    work: [q]\n');
    const policy = loadAccessPolicy(file);
    expect(policy.tokens.map((t) => [t.digest.toString('hex'), t.principal.name])).toEqual([[tokenDigest(TOKEN_A), 'w']]);
    expect(policy.tokenFiles).toEqual([path.join(sub, 'w.token')]);
  });

  it('a file that is not YAML, or cannot be read, is refused with its name', () => {
    const file = path.join(dir, 'broken.yaml');
    writeFileSync(file, 'identities: [\n  {name: x\n');
    expect(() => loadAccessPolicy(file)).toThrow(/access policy .*broken\.yaml is not YAML or JSON/);
    expect(() => loadAccessPolicy(path.join(dir, 'absent.yaml'))).toThrow(/cannot read access policy .*absent\.yaml/);
    // Errors of a valid YAML document carry the file name too.
    writeFileSync(file, 'version: 3\n');
    expect(() => loadAccessPolicy(file)).toThrow(/broken\.yaml: access policy: version/);
  });
});
