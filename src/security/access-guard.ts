import { createHash, timingSafeEqual } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Clock } from '../core/clock';
import { MAX_KEY_LENGTH, type RawSubmit } from '../core/task-fields';
import { TokenBucket } from '../core/token-bucket';
import { ZonalError, type Reason } from '../errors';
import { isSpiffeId, type CompiledAccessPolicy, type Principal } from './access-policy';
import { tokenDigest } from './token';
import { QueueDepths } from './queue-depths';

/** What the guard reads of a gRPC call: its request metadata and its TLS peer. */
export interface CallPeer {
  readonly metadata: grpc.Metadata;
  getAuthContext(): { sslPeerCertificate?: { subjectaltname?: string } | undefined } | null;
}

/** The methods refusals are counted under (zonal_refusals_total's `method` label). */
export type GuardedMethod = 'Submit' | 'SubmitBatch' | 'GetTask' | 'CancelTask' | 'WatchTask' | 'Connect';

export interface RefusalCount {
  reason: Reason;
  method: GuardedMethod;
  count: number;
}

export interface AccessGuardDeps {
  /** The policy in force (it may be reloaded). */
  policy(): CompiledAccessPolicy;
  clock: Clock;
  /** PENDING tasks of one queue, for the queue caps (TaskStore.pendingCount). */
  readQueued(queue: string): Promise<number>;
  /** Which of these idempotency keys a task holds now (TaskStore.heldKeys): a resubmit to a full queue gets its task. */
  heldKeys(keys: readonly string[]): Promise<Set<string>>;
  /** How old the queue depths may be before they are read again (default 1000 ms). */
  queueDepthMaxAgeMs?: number;
  onError(error: unknown): void;
}

const BEARER = /^Bearer ([\x21-\x7e]{1,4096})$/;

/**
 * Enforces the access policy on every call: who the caller is (bearer
 * token, else client certificate, else anonymous), what it may do per
 * queue, and the admission limits (submit rate per identity, streams per
 * identity, waiting tasks per queue). Every refusal is a ZonalError with
 * UNAUTHENTICATED, PERMISSION_DENIED or RESOURCE_EXHAUSTED, a reason that
 * says what to fix, and is counted.
 *
 * Tokens: the presented token is hashed (SHA-256) and its digest compared
 * with timingSafeEqual against every known digest, without stopping at a
 * match; the token itself is never compared byte by byte, logged, or put in
 * an error.
 *
 * Invariant: `streams` holds a positive count for exactly the identities
 * with open streams; `buckets` only identities of the policy (bounded by it).
 */
export class AccessGuard {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly streams = new Map<string, number>();
  private readonly counts = new Map<string, RefusalCount>();
  private readonly depths: QueueDepths;

  constructor(private readonly deps: AccessGuardDeps) {
    this.depths = new QueueDepths(deps.readQueued, deps.clock, deps.queueDepthMaxAgeMs ?? 1_000, deps.onError);
  }

  /** Who is calling; throws UNAUTHENTICATED when the policy does not know them. */
  identify(call: CallPeer, method: GuardedMethod): Principal {
    const policy = this.deps.policy();
    const header = call.metadata.get('authorization');
    if (header.length > 0) {
      const match = header.length === 1 && typeof header[0] === 'string' ? BEARER.exec(header[0]) : null;
      if (match === null) throw this.refuse('UNAUTHENTICATED', method, 'the authorization metadata must be one "Bearer <token>" value');
      const presented = Buffer.from(tokenDigest(match[1]!), 'hex');
      // Every known digest is compared, without stopping at a match: the time taken does not depend on the token.
      let principal: Principal | undefined;
      for (const known of policy.tokens) if (timingSafeEqual(known.digest, presented)) principal = known.principal;
      if (principal === undefined) {
        throw this.refuse('UNAUTHENTICATED', method, "the bearer token is not in this dispatcher's access policy (the token is not shown): check the client's token file against the policy's tokenSha256 or tokenFile entries");
      }
      return principal;
    }
    const spiffeIds = spiffeIdsOf(call);
    if (spiffeIds.length > 0) {
      for (const id of spiffeIds) {
        const principal = policy.bySpiffeId.get(id);
        if (principal !== undefined) return principal;
      }
      if (policy.anonymous === undefined) {
        throw this.refuse('UNAUTHENTICATED', method, `the client certificate's SPIFFE ID ${spiffeIds[0]!.slice(0, 200)} is not in the access policy: add an identity with this spiffeId`);
      }
      return policy.anonymous;
    }
    if (policy.anonymous !== undefined) return policy.anonymous;
    throw this.refuse(
      'UNAUTHENTICATED',
      method,
      'this dispatcher needs a bearer token (authorization: Bearer <token>; the SDK\'s `token` option or `--token-file`) or a client certificate whose URI SAN is a SPIFFE ID of its access policy',
    );
  }

  /** Undefined when `principal` may produce to `queue`, else the refusal (already counted). */
  produceRefusal(principal: Principal, queue: string, method: GuardedMethod): ZonalError | undefined {
    if (principal.produce.allows(queue)) return undefined;
    return this.refuse('PERMISSION_DENIED', method, `identity "${principal.name}" may not use queue "${queue.slice(0, 128)}" (it may produce to: ${principal.produce.describe()}); grant the queue in the access policy's produce list`);
  }

  /** Throws PERMISSION_DENIED unless `principal` may work every queue of `queues`. */
  checkWork(principal: Principal, queues: readonly string[]): void {
    const denied = queues.find((queue) => !principal.work.allows(queue));
    if (denied !== undefined) {
      throw this.refuse('PERMISSION_DENIED', 'Connect', `identity "${principal.name}" may not work queue "${denied.slice(0, 128)}" (it may work: ${principal.work.describe()}); grant the queue in the access policy's work list`);
    }
  }

  /** Takes `tasks` from the identity's submit bucket; throws RATE_LIMITED with a pushback when it is empty. */
  takeSubmitRate(principal: Principal, tasks: number, method: GuardedMethod): void {
    const limits = principal.submitRate;
    if (limits === undefined || tasks === 0) return;
    const now = this.deps.clock.nowMs();
    let bucket = this.buckets.get(principal.name);
    if (bucket === undefined) {
      bucket = new TokenBucket(limits, now);
      this.buckets.set(principal.name, bucket);
    } else {
      bucket.setLimits(limits, now);
    }
    const taken = bucket.take(tasks, now);
    if (!taken.ok) {
      throw this.refuse('RATE_LIMITED', method, `identity "${principal.name}" may submit ${limits.ratePerSec} tasks/s (burst ${limits.burst}); retry this call of ${tasks} in ${taken.retryAfterMs} ms`, taken.retryAfterMs);
    }
  }

  /**
   * Admits `n` tasks into `queue` under its cap: a settle function to call
   * once with how many were accepted (the `n` count as waiting meanwhile, so
   * concurrent submits cannot all pass), or, when the queue is full, `refuse`,
   * which counts and builds the QUEUE_FULL refusal of the `times` tasks the
   * caller refuses (a resubmit whose idempotency key is held is not refused).
   */
  async admitToQueue(queue: string, n: number, method: GuardedMethod): Promise<{ refuse(times: number): ZonalError } | { settle(accepted: number): void }> {
    const cap = this.deps.policy().maxQueued(queue);
    if (cap === Infinity) return { settle: () => undefined };
    const admitted = await this.depths.admit(queue, n, cap);
    if (admitted.admitted) return admitted;
    const message = `queue "${queue.slice(0, 128)}" has ${admitted.depth} tasks waiting and holds at most ${cap} (the access policy's limits); retry later, add workers, or raise the cap`;
    return { refuse: (times) => this.refuse('QUEUE_FULL', method, message, undefined, times) };
  }

  /** Which of `keys` a task holds now; none when the store cannot say (the caller then refuses, and the client retries). */
  async heldKeys(keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    try {
      return await this.deps.heldKeys(keys);
    } catch (err) {
      this.deps.onError(err);
      return new Set();
    }
  }

  /**
   * The task as the store keeps it for `principal`: its idempotency key
   * scoped to the identity (a SHA-256 of the identity's name and the key;
   * keys are never shown), so one identity's keys never match another's: a
   * producer cannot learn another's task ids, or have its own submits taken
   * for another's, by guessing keys. A key over the length bound is left as it
   * is, for the submit to refuse.
   */
  scopeIdempotencyKey(principal: Principal, raw: RawSubmit): RawSubmit {
    const key = raw.idempotencyKey;
    if (typeof key !== 'string' || key === '' || key.length > MAX_KEY_LENGTH) return raw;
    return { ...raw, idempotencyKey: `id:${createHash('sha256').update(principal.name).update('\u0000').update(key).digest('base64url')}` };
  }

  /** Whether any queue cap is configured (the depths are read only then). */
  get capsQueues(): boolean {
    return this.deps.policy().capsQueues;
  }

  /** Counts a worker stream of `principal`; throws TOO_MANY_STREAMS past its cap. Call the returned function once when the stream ends. */
  openStream(principal: Principal): () => void {
    const open = this.streams.get(principal.name) ?? 0;
    if (open >= principal.maxStreams) {
      throw this.refuse('TOO_MANY_STREAMS', 'Connect', `identity "${principal.name}" has ${open} worker streams open and may have at most ${principal.maxStreams}; close some, or raise maxStreams in the access policy`);
    }
    this.streams.set(principal.name, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.streams.get(principal.name) ?? 1) - 1;
      if (left <= 0) this.streams.delete(principal.name);
      else this.streams.set(principal.name, left);
    };
  }

  /** Every refusal so far, by reason and method (cumulative). */
  refusals(): RefusalCount[] {
    return [...this.counts.values()];
  }

  /** Counts a refusal (`times`: the tasks of a batch it refuses) and builds its error. */
  refuse(reason: Reason, method: GuardedMethod, message: string, retryPushbackMs?: number, times = 1): ZonalError {
    const key = `${reason}/${method}`;
    const entry = this.counts.get(key);
    if (entry === undefined) this.counts.set(key, { reason, method, count: times });
    else entry.count += times;
    return new ZonalError(reason, message, retryPushbackMs !== undefined ? { retryPushbackMs } : undefined);
  }
}

/** The SPIFFE IDs among a verified client certificate's URI SANs (none without mTLS). */
function spiffeIdsOf(call: CallPeer): string[] {
  const san = call.getAuthContext()?.sslPeerCertificate?.subjectaltname;
  if (san === undefined || san === '') return [];
  const ids: string[] = [];
  for (const part of san.split(', ')) {
    if (!part.startsWith('URI:')) continue;
    const uri = part.slice(4);
    if (isSpiffeId(uri)) ids.push(uri);
  }
  return ids;
}
