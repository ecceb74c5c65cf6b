import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock';
import { ZonalError } from '../../src/errors';
import { AccessGuard, type CallPeer } from '../../src/security/access-guard';
import { compileAccessPolicy, tokenDigest, type AccessPolicyDocument, type CompiledAccessPolicy } from '../../src/security/access-policy';

/** The guard on fake calls (metadata and a TLS peer), a fake clock and a fake store count: no sockets. */

const PRODUCER_TOKEN = 'producer-token-0123456789';
const WORKER_TOKEN = 'worker-token-abcdefghijkl';
const UNKNOWN_TOKEN = 'unknown-token-ZZZZZZZZZZZZ';

const BASE: AccessPolicyDocument = {
  identities: [
    { name: 'producer', tokenSha256: tokenDigest(PRODUCER_TOKEN), produce: ['alpha', 'beta-*'], submitPerSec: 10, submitBurst: 5 },
    { name: 'worker', tokenSha256: tokenDigest(WORKER_TOKEN), spiffeId: 'spiffe://test.zonal/worker-a', work: ['alpha'], maxStreams: 2 },
    { name: 'cert-only', spiffeId: 'spiffe://test.zonal/producer-b', produce: ['*'] },
  ],
  limits: { queues: { alpha: { maxQueued: 3 } } },
};

/** A call as grpc-js hands it to a handler: its metadata, and the peer certificate's SANs when mTLS verified one. */
function call(options: { authorization?: string | string[]; san?: string } = {}): CallPeer {
  const metadata = new grpc.Metadata();
  for (const value of [options.authorization ?? []].flat()) metadata.add('authorization', value);
  return {
    metadata,
    getAuthContext: () => (options.san !== undefined ? { sslPeerCertificate: { subjectaltname: options.san } } : {}),
  };
}

function refusal(fn: () => unknown): ZonalError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ZonalError);
    return err as ZonalError;
  }
  throw new Error('expected a refusal');
}

function setup(doc: AccessPolicyDocument = BASE, queued: () => Promise<ReadonlyMap<string, number>> = async () => new Map()) {
  const clock = new ManualClock();
  let policy: CompiledAccessPolicy = compileAccessPolicy(doc, '/');
  const errors: unknown[] = [];
  let reads = 0;
  const heldKeys = new Set<string>();
  const guard = new AccessGuard({
    policy: () => policy,
    clock,
    readQueued: async (queue) => {
      reads += 1;
      return (await queued()).get(queue) ?? 0;
    },
    heldKeys: async (keys) => new Set(keys.filter((key) => heldKeys.has(key))),
    onError: (e) => errors.push(e),
  });
  return {
    guard,
    clock,
    errors,
    reads: () => reads,
    heldKeys,
    setPolicy: (next: AccessPolicyDocument) => (policy = compileAccessPolicy(next, '/')),
  };
}

async function refusalOf(admission: Promise<{ refuse(times: number): ZonalError } | { settle(accepted: number): void }>): Promise<ZonalError | undefined> {
  const result = await admission;
  return 'refuse' in result ? result.refuse(1) : undefined;
}

describe('AccessGuard: who is calling', () => {
  it('a known bearer token names its identity, and wins over a client certificate', () => {
    const { guard } = setup();
    expect(guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Submit').name).toBe('producer');
    expect(guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}`, san: 'URI:spiffe://test.zonal/worker-a' }), 'Submit').name).toBe('producer');
    expect(guard.refusals()).toEqual([]);
  });

  it('an unknown token is UNAUTHENTICATED, says what to check, never shows the token, and is counted', () => {
    const { guard } = setup();
    const err = refusal(() => guard.identify(call({ authorization: `Bearer ${UNKNOWN_TOKEN}`, san: 'URI:spiffe://test.zonal/worker-a' }), 'GetTask'));
    expect(err).toMatchObject({ reason: 'UNAUTHENTICATED', code: grpc.status.UNAUTHENTICATED, retryable: false });
    expect(err.message).toContain("not in this dispatcher's access policy (the token is not shown)");
    expect(err.message).toContain('tokenSha256');
    expect(err.message).not.toContain(UNKNOWN_TOKEN);
    expect(JSON.stringify(err.toInfo())).not.toContain(UNKNOWN_TOKEN);
    expect(guard.refusals()).toEqual([{ reason: 'UNAUTHENTICATED', method: 'GetTask', count: 1 }]);
  });

  it('an authorization value that is not one "Bearer <token>" is refused, whatever follows', () => {
    const { guard } = setup();
    for (const authorization of [`Basic ${PRODUCER_TOKEN}`, `bearer ${PRODUCER_TOKEN}`, `Bearer ${PRODUCER_TOKEN} extra`, 'Bearer ', [`Bearer ${PRODUCER_TOKEN}`, `Bearer ${WORKER_TOKEN}`]]) {
      const err = refusal(() => guard.identify(call({ authorization }), 'Submit'));
      expect(err.reason, JSON.stringify(authorization)).toBe('UNAUTHENTICATED');
      expect(err.message).toContain('one "Bearer <token>" value');
      expect(err.message).not.toContain(PRODUCER_TOKEN);
    }
    expect(guard.refusals()).toEqual([{ reason: 'UNAUTHENTICATED', method: 'Submit', count: 5 }]);
  });

  it('without a token, a verified certificate\'s SPIFFE URI SAN names the identity; other SANs are ignored', () => {
    const { guard } = setup();
    expect(guard.identify(call({ san: 'DNS:worker.local, URI:https://example/x, URI:spiffe://test.zonal/worker-a' }), 'Connect').name).toBe('worker');
    expect(guard.identify(call({ san: 'URI:spiffe://test.zonal/stranger, URI:spiffe://test.zonal/producer-b' }), 'Submit').name).toBe('cert-only');
  });

  it('an unknown SPIFFE ID is UNAUTHENTICATED naming it, unless the policy admits anonymous callers', () => {
    const { guard, setPolicy } = setup();
    const err = refusal(() => guard.identify(call({ san: 'URI:spiffe://test.zonal/stranger' }), 'Connect'));
    expect(err.reason).toBe('UNAUTHENTICATED');
    expect(err.message).toContain('spiffe://test.zonal/stranger');
    expect(err.message).toContain('add an identity with this spiffeId');
    setPolicy({ ...BASE, anonymous: { produce: ['public'] } });
    const anon = guard.identify(call({ san: 'URI:spiffe://test.zonal/stranger' }), 'Connect');
    expect(anon.name).toBe('anonymous');
    expect(anon.produce.allows('public')).toBe(true);
    expect(anon.produce.allows('alpha')).toBe(false);
  });

  it('no credentials at all: UNAUTHENTICATED saying how to present some, or anonymous when the policy has it', () => {
    const { guard, setPolicy } = setup();
    for (const peer of [call(), call({ san: '' }), call({ san: 'DNS:localhost' })]) {
      const err = refusal(() => guard.identify(peer, 'WatchTask'));
      expect(err.reason).toBe('UNAUTHENTICATED');
      expect(err.message).toContain('needs a bearer token');
      expect(err.message).toContain('SPIFFE ID');
    }
    setPolicy({ ...BASE, anonymous: {} });
    const anon = guard.identify(call(), 'WatchTask');
    expect(anon.name).toBe('anonymous');
    expect(anon.produce.allows('alpha')).toBe(false);
    expect(anon.work.allows('alpha')).toBe(false);
  });

  it('a reloaded policy applies to the next call', () => {
    const { guard, setPolicy } = setup();
    expect(guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Submit').name).toBe('producer');
    setPolicy({ identities: [{ name: 'renamed', tokenSha256: tokenDigest(PRODUCER_TOKEN), produce: ['gamma'] }] });
    const principal = guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Submit');
    expect(principal.name).toBe('renamed');
    expect(guard.produceRefusal(principal, 'alpha', 'Submit')?.reason).toBe('PERMISSION_DENIED');
    setPolicy({ identities: [] });
    expect(refusal(() => guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Submit')).reason).toBe('UNAUTHENTICATED');
  });
});

describe('AccessGuard: what the caller may do', () => {
  it('produce grants: a refusal names the identity, the queue and what it may use, and is counted by method', () => {
    const { guard } = setup();
    const producer = guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Submit');
    expect(guard.produceRefusal(producer, 'alpha', 'Submit')).toBeUndefined();
    expect(guard.produceRefusal(producer, 'beta-1', 'Submit')).toBeUndefined();
    const denied = guard.produceRefusal(producer, 'gamma', 'SubmitBatch')!;
    expect(denied).toBeInstanceOf(ZonalError);
    expect(denied).toMatchObject({ reason: 'PERMISSION_DENIED', code: grpc.status.PERMISSION_DENIED, retryable: false });
    expect(denied.message).toBe('identity "producer" may not use queue "gamma" (it may produce to: alpha, beta-*); grant the queue in the access policy\'s produce list');
    guard.produceRefusal(producer, 'gamma', 'GetTask');
    guard.produceRefusal(producer, 'gamma', 'GetTask');
    expect(guard.refusals()).toEqual(
      expect.arrayContaining([
        { reason: 'PERMISSION_DENIED', method: 'SubmitBatch', count: 1 },
        { reason: 'PERMISSION_DENIED', method: 'GetTask', count: 2 },
      ]),
    );
    expect(guard.refusals()).toHaveLength(2);
  });

  it('work grants: every queue of the Hello must be granted', () => {
    const { guard } = setup();
    const worker = guard.identify(call({ san: 'URI:spiffe://test.zonal/worker-a' }), 'Connect');
    expect(() => guard.checkWork(worker, ['alpha'])).not.toThrow();
    const err = refusal(() => guard.checkWork(worker, ['alpha', 'beta']));
    expect(err.reason).toBe('PERMISSION_DENIED');
    expect(err.message).toContain('identity "worker" may not work queue "beta" (it may work: alpha)');
    // A producer has no work grants at all.
    const producer = guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Connect');
    expect(refusal(() => guard.checkWork(producer, ['alpha'])).message).toContain('(it may work: no queue)');
    expect(guard.refusals()).toEqual([{ reason: 'PERMISSION_DENIED', method: 'Connect', count: 2 }]);
  });
});

describe('AccessGuard: admission limits', () => {
  it('submit rate per identity: a spent bucket refuses the call with RATE_LIMITED and a pushback; it refills with time', () => {
    const { guard, clock } = setup();
    const producer = guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Submit');
    guard.takeSubmitRate(producer, 5, 'SubmitBatch');
    const err = refusal(() => guard.takeSubmitRate(producer, 2, 'SubmitBatch'));
    expect(err).toMatchObject({ reason: 'RATE_LIMITED', code: grpc.status.RESOURCE_EXHAUSTED, retryable: true, retryPushbackMs: 200 });
    expect(err.message).toContain('identity "producer" may submit 10 tasks/s (burst 5); retry this call of 2 in 200 ms');
    clock.advance(150);
    expect(refusal(() => guard.takeSubmitRate(producer, 2, 'SubmitBatch')).retryPushbackMs).toBe(50);
    clock.advance(50);
    expect(() => guard.takeSubmitRate(producer, 2, 'SubmitBatch')).not.toThrow();
    // Nothing to submit takes nothing (an empty batch, or a batch of refused tasks).
    expect(() => guard.takeSubmitRate(producer, 0, 'SubmitBatch')).not.toThrow();
    expect(guard.refusals()).toEqual([{ reason: 'RATE_LIMITED', method: 'SubmitBatch', count: 2 }]);
  });

  it('each identity has its own bucket; an identity without a rate is never limited', () => {
    const { guard } = setup();
    const producer = guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Submit');
    const other = guard.identify(call({ san: 'URI:spiffe://test.zonal/producer-b' }), 'Submit');
    guard.takeSubmitRate(producer, 5, 'Submit');
    expect(refusal(() => guard.takeSubmitRate(producer, 1, 'Submit')).reason).toBe('RATE_LIMITED');
    for (let i = 0; i < 1_000; i++) guard.takeSubmitRate(other, 100, 'Submit');
  });

  it('a reloaded rate applies to the bucket already in use', () => {
    const { guard, setPolicy } = setup();
    const first = guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Submit');
    guard.takeSubmitRate(first, 5, 'Submit');
    setPolicy({ identities: [{ name: 'producer', tokenSha256: tokenDigest(PRODUCER_TOKEN), produce: ['alpha'], submitPerSec: 1, submitBurst: 1 }] });
    const reloaded = guard.identify(call({ authorization: `Bearer ${PRODUCER_TOKEN}` }), 'Submit');
    const err = refusal(() => guard.takeSubmitRate(reloaded, 1, 'Submit'));
    expect(err.retryPushbackMs).toBe(1_000);
  });

  it('queue caps: the store\'s PENDING count plus what was accepted since; read at most once a second', async () => {
    let stored = new Map([['alpha', 1]]);
    const { guard, clock, reads } = setup(BASE, async () => stored);
    expect(guard.capsQueues).toBe(true);
    const first = await guard.admitToQueue('alpha', 2, 'Submit');
    expect('settle' in first).toBe(true);
    expect(reads()).toBe(1);
    if ('settle' in first) first.settle(2);
    const full = await refusalOf(guard.admitToQueue('alpha', 1, 'Submit'));
    expect(full).toBeInstanceOf(ZonalError);
    expect(full).toMatchObject({ reason: 'QUEUE_FULL', code: grpc.status.RESOURCE_EXHAUSTED, retryable: true });
    expect(full!.message).toBe('queue "alpha" has 3 tasks waiting and holds at most 3 (the access policy\'s limits); retry later, add workers, or raise the cap');
    expect(reads()).toBe(1);
    // Workers drained the queue: seen at the next read, a second later.
    stored = new Map();
    clock.advance(999);
    expect((await refusalOf(guard.admitToQueue('alpha', 1, 'Submit')))?.reason).toBe('QUEUE_FULL');
    clock.advance(1);
    const three = await guard.admitToQueue('alpha', 3, 'Submit');
    expect('settle' in three).toBe(true);
    expect(reads()).toBe(2);
    // Three in flight (not settled yet) count as waiting.
    expect(await refusalOf(guard.admitToQueue('alpha', 1, 'Submit'))).toBeDefined();
    // Settled with none accepted (say, all deduplicated): the room comes back.
    if ('settle' in three) three.settle(0);
    expect(await refusalOf(guard.admitToQueue('alpha', 3, 'Submit'))).toBeUndefined();
    // A queue without a cap is never read for.
    expect(await refusalOf(guard.admitToQueue('beta-1', 1_000_000, 'Submit'))).toBeUndefined();
    // Counted once per task refused.
    expect(guard.refusals()).toEqual([{ reason: 'QUEUE_FULL', method: 'Submit', count: 3 }]);
  });

  it('concurrent submits share one read of the depths, and cannot all pass the cap', async () => {
    let release: (m: Map<string, number>) => void = () => undefined;
    const { guard, reads } = setup(BASE, () => new Promise((resolve) => (release = resolve)));
    const checks = [guard.admitToQueue('alpha', 1, 'Submit'), guard.admitToQueue('alpha', 1, 'Submit'), guard.admitToQueue('alpha', 1, 'Submit')];
    release(new Map([['alpha', 2]]));
    const results = await Promise.all(checks);
    expect(reads()).toBe(1);
    expect(results.filter((r) => 'settle' in r)).toHaveLength(1);
    expect(results.filter((r) => 'refuse' in r)).toHaveLength(2);
  });

  it('a failed read of the depths is reported and the last figures stay', async () => {
    let fail = false;
    const { guard, clock, errors } = setup(BASE, async () => {
      if (fail) throw new Error('store down');
      return new Map([['alpha', 3]]);
    });
    expect((await refusalOf(guard.admitToQueue('alpha', 1, 'Submit')))?.reason).toBe('QUEUE_FULL');
    fail = true;
    clock.advance(1_000);
    expect((await refusalOf(guard.admitToQueue('alpha', 1, 'Submit')))?.reason).toBe('QUEUE_FULL');
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('store down');
  });

  it('without caps in the policy, no depth is ever read', async () => {
    const { guard, reads } = setup({ identities: BASE.identities });
    expect(guard.capsQueues).toBe(false);
    expect(await refusalOf(guard.admitToQueue('alpha', 1_000_000, 'Submit'))).toBeUndefined();
    expect(reads()).toBe(0);
  });

  it('streams per identity: the one past the cap is TOO_MANY_STREAMS; closing one makes room; a release counts once', () => {
    const { guard } = setup();
    const worker = guard.identify(call({ san: 'URI:spiffe://test.zonal/worker-a' }), 'Connect');
    const releaseA = guard.openStream(worker);
    const releaseB = guard.openStream(worker);
    const err = refusal(() => guard.openStream(worker));
    expect(err).toMatchObject({ reason: 'TOO_MANY_STREAMS', code: grpc.status.RESOURCE_EXHAUSTED, retryable: true });
    expect(err.message).toContain('identity "worker" has 2 worker streams open and may have at most 2');
    // The cap is per identity: another identity is not affected.
    const other = guard.identify(call({ san: 'URI:spiffe://test.zonal/producer-b' }), 'Connect');
    for (let i = 0; i < 10; i++) guard.openStream(other);
    releaseA();
    releaseA();
    const releaseC = guard.openStream(worker);
    expect(refusal(() => guard.openStream(worker)).reason).toBe('TOO_MANY_STREAMS');
    releaseB();
    releaseC();
    guard.openStream(worker);
    guard.openStream(worker);
    expect(guard.refusals()).toEqual([{ reason: 'TOO_MANY_STREAMS', method: 'Connect', count: 2 }]);
  });
});
