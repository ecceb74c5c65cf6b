import type { WireSubmitRequest, WireSubmitResult } from '../protocol/wire';
import { ZonalError, isReason } from '../errors';

export interface SubmitOutcomeOut {
  taskId: string;
  /**
   * The task already existed under this idempotency key. Always false when
   * the SDK made the key (no `idempotencyKey` given): that key belongs to
   * this one call, so an existing task can only be the call's own earlier
   * attempt, made durable before its answer was lost and retried.
   */
  deduplicated: boolean;
  /** The dispatcher that made it durable: "<zone>/<id>". */
  servedBy: string;
}

interface Pending {
  request: Partial<WireSubmitRequest>;
  resolve: (outcome: SubmitOutcomeOut) => void;
  reject: (error: Error) => void;
}

export interface BatcherOptions {
  /** Most tasks in one SubmitBatch. */
  maxTasks: number;
  /**
   * Longest a submit waits for others to join its batch. 0 (the default):
   * no timer, the batch goes at the end of the current event-loop turn
   * (setImmediate), holding every submit made in that turn.
   */
  lingerMs: number;
}

/**
 * Coalesces concurrent `submit()` calls into SubmitBatch calls, bounded by
 * count and by `lingerMs`, because one unary call per task caps throughput
 * at the RPC rate. Each task keeps its own result and error.
 *
 * Why the default waits for no timer: the submits that can share a batch
 * are the ones an application makes together (a loop, the answers of one
 * batch starting the next submits), and they all happen in one event-loop
 * turn; a timer added its whole delay (1 ms asked, 1-2 ms in practice) to
 * every submit, most visibly at low rates (bench/suite latency).
 *
 * A batch is one logical call for the retry policy: `send` may retry it, and
 * every retry resends the same requests, idempotency keys included, so a
 * retry after a lost answer never creates a second task. When `send` fails
 * (CIRCUIT_OPEN, retries exhausted), every task of the batch gets that error.
 */
export class SubmitBatcher {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  constructor(
    private readonly options: BatcherOptions,
    private readonly send: (requests: Partial<WireSubmitRequest>[]) => Promise<{ results: WireSubmitResult[]; servedBy: string }>,
  ) {}

  submit(request: Partial<WireSubmitRequest>): Promise<SubmitOutcomeOut> {
    return new Promise((resolve, reject) => {
      this.pending.push({ request, resolve, reject });
      if (this.pending.length >= this.options.maxTasks) this.flush();
      else if (this.options.lingerMs > 0) this.timer ??= setTimeout(() => this.flush(), this.options.lingerMs);
      else this.immediate ??= setImmediate(() => this.flush());
    });
  }

  /** Sends what is waiting now. */
  flush(): void {
    this.cancelWait();
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.send(batch.map((p) => p.request)).then(
      ({ results, servedBy }) => {
        batch.forEach((p, i) => {
          const result = results[i];
          if (result === undefined) p.reject(new ZonalError('INTERNAL', 'the dispatcher answered fewer results than tasks'));
          else if (result.error) p.reject(new ZonalError(isReason(result.error.reason) ? result.error.reason : 'CALL_FAILED', result.error.message, { code: result.error.code }));
          else p.resolve({ taskId: result.taskId, deduplicated: result.deduplicated, servedBy });
        });
      },
      (error: Error) => {
        for (const p of batch) p.reject(error);
      },
    );
  }

  /** Rejects everything not yet sent. */
  close(error: Error): void {
    this.cancelWait();
    const batch = this.pending;
    this.pending = [];
    for (const p of batch) p.reject(error);
  }

  private cancelWait(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }
}
