import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock';
import type { RawSubmit } from '../../src/core/task-fields';
import { ZonalError } from '../../src/errors';
import { AccessGuard } from '../../src/security/access-guard';
import { compileAccessPolicy, type Principal } from '../../src/security/access-policy';
import { guardedSubmit } from '../../src/server/grpc-service';
import type { SubmitOutcome } from '../../src/server/dispatcher';

/** guardedSubmit over a fake dispatcher and a guard on a fake clock and store: what reaches the caps and the store. */
function setup(maxQueuedPerQueue = 1_000) {
  const policy = compileAccessPolicy({ identities: [{ name: 'p', tokenSha256: '0'.repeat(64), produce: ['*'] }, { name: 'q', tokenSha256: '1'.repeat(64), produce: ['*'] }], limits: { maxQueuedPerQueue } }, '/');
  const depthReads: string[] = [];
  const guard = new AccessGuard({
    policy: () => policy,
    clock: new ManualClock(),
    readQueued: async (queue) => {
      depthReads.push(queue);
      return 0;
    },
    heldKeys: async () => new Set(),
    onError: (e) => {
      throw e;
    },
  });
  const submitted: RawSubmit[][] = [];
  const dispatcher = {
    assertBatchSize: (n: number) => {
      if (n > 10_000) throw new ZonalError('BATCH_TOO_LARGE', 'too large');
    },
    submit: async (raws: RawSubmit[]): Promise<SubmitOutcome[]> => {
      submitted.push(raws);
      return raws.map((_, i) => ({ taskId: `t${i}`, deduplicated: false, error: null }));
    },
  };
  const principal = (name: string): Principal => policy.tokens.find((t) => t.principal.name === name)!.principal;
  return { guard, dispatcher, principal, depthReads, submitted };
}

describe('guardedSubmit', () => {
  it('a queue name the submit will refuse is never read for, nor kept, by the queue caps', async () => {
    const { guard, dispatcher, principal, depthReads, submitted } = setup();
    const huge = 'q'.repeat(1_000_000);
    await guardedSubmit(dispatcher, guard, principal('p'), [{ queue: huge }, { queue: 'bad name' }, { queue: 'good' }], 'SubmitBatch');
    expect(depthReads).toEqual(['good']);
    // The store's submit gets all three and refuses the two (INVALID_ARGUMENT) itself.
    expect(submitted[0]!.map((r) => r.queue)).toEqual([huge, 'bad name', 'good']);
  });

  it("scopes idempotency keys to the identity, invisibly: the same key from two identities is two keys; one identity's is stable", async () => {
    const { guard, dispatcher, principal, submitted } = setup();
    await guardedSubmit(dispatcher, guard, principal('p'), [{ queue: 'a', idempotencyKey: 'order-42' }, { queue: 'a' }], 'SubmitBatch');
    await guardedSubmit(dispatcher, guard, principal('q'), [{ queue: 'a', idempotencyKey: 'order-42' }], 'Submit');
    await guardedSubmit(dispatcher, guard, principal('p'), [{ queue: 'b', idempotencyKey: 'order-42' }, { queue: 'a', idempotencyKey: 'k'.repeat(257) }], 'SubmitBatch');
    const [pKey, none] = submitted[0]!.map((r) => r.idempotencyKey);
    const qKey = submitted[1]![0]!.idempotencyKey;
    expect(pKey).toMatch(/^id:[A-Za-z0-9_-]{43}$/);
    expect(none).toBeUndefined();
    expect(qKey).not.toBe(pKey);
    expect(submitted[2]![0]!.idempotencyKey).toBe(pKey);
    // Over the bound: left as it is, for the submit to refuse as idempotency_key.
    expect(submitted[2]![1]!.idempotencyKey).toBe('k'.repeat(257));
  });
});
