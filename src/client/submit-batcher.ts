import type { WireSubmitRequest, WireSubmitResult } from '../protocol/wire';
import { ZonalError, isReason } from '../errors';

export interface SubmitOutcomeOut {
  taskId: string;
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
  /** Longest a submit waits for others to join its batch. */
  lingerMs: number;
}

/**
 * Coalesces concurrent `submit()` calls into SubmitBatch calls, bounded by
 * count and by `lingerMs`, because one unary call per task caps throughput
 * at the RPC rate. Each task keeps its own result and error.
 *
 * A batch is one logical call for the retry policy: `send` may retry it, and
 * every retry resends the same requests, idempotency keys included, so a
 * retry after a lost answer never creates a second task. When `send` fails
 * (CIRCUIT_OPEN, retries exhausted), every task of the batch gets that error.
 */
export class SubmitBatcher {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: BatcherOptions,
    private readonly send: (requests: Partial<WireSubmitRequest>[]) => Promise<{ results: WireSubmitResult[]; servedBy: string }>,
  ) {}

  submit(request: Partial<WireSubmitRequest>): Promise<SubmitOutcomeOut> {
    return new Promise((resolve, reject) => {
      this.pending.push({ request, resolve, reject });
      if (this.pending.length >= this.options.maxTasks) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.options.lingerMs);
    });
  }

  /** Sends what is waiting now. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
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
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    for (const p of batch) p.reject(error);
  }
}
