/**
 * What the soak's clients reported, as it arrives: every acknowledged task
 * (with its key, kind and producer), every cancel outcome, every execution
 * (task, attempt, worker) and every settled final update. The verdict reads
 * it against the store. Memory: a few hundred bytes per task.
 */
import type { ChildEvent } from './processes';
import type { CancelOutcome, KindName } from './task-kinds';

export interface Ack {
  key: string;
  atMs: number;
  kind: KindName;
  producer: string;
  tries: number;
  /** Why the earlier tries failed (producer.ts), when there were several. */
  history: string[] | undefined;
  servedBy: string;
}

export interface Execution {
  attempt: number;
  workerId: string;
  /** The idempotency key in the payload, and the dispatcher of the worker's stream at the time. */
  key: string;
  dispatcherId: string;
  atMs: number;
}

export interface Settle {
  attempt: number;
  status: string;
  result: string;
  reason: string;
  workerId: string;
  dispatcherId: string;
  atMs: number;
}

/** A cancel's outcome, with what the verdict's evidence shows of it. */
export type CancelRecord = CancelOutcome & { sentAtMs: number; answeredAtMs?: number; history: string[] };

export class Ledger {
  /** Acknowledged tasks by id. */
  readonly acks = new Map<string, Ack>();
  /** Every key acknowledged, with the task it named: a key acknowledged twice must name one task. */
  readonly keys = new Map<string, string>();
  /** Task ids acknowledged under two different keys (an idempotency break). */
  readonly sharedIds: { taskId: string; keys: [string, string] }[] = [];
  /** A key acknowledged twice with different task ids. */
  readonly keyConflicts: { key: string; taskIds: [string, string] }[] = [];
  readonly cancels = new Map<string, CancelRecord>();
  readonly executions = new Map<string, Execution[]>();
  readonly settles = new Map<string, Settle[]>();
  readonly unacked: { key: string; kind: string; lastError: string; permanent: boolean }[] = [];
  /** Each producer's final counts (its `done`). */
  readonly producerReports = new Map<string, Record<string, unknown>>();
  /** Each worker incarnation's final stats, for those that were stopped rather than killed. */
  readonly workerReports = new Map<string, Record<string, unknown>>();
  /** Errors the children reported (`error` events). */
  readonly childErrors: { child: string; message: string }[] = [];
  workerConnects = 0;
  executionCount = 0;

  onProducerEvent(producer: string, e: ChildEvent): void {
    switch (e.event) {
      case 'ack': {
        const taskId = String(e['taskId']);
        const key = String(e['key']);
        const known = this.keys.get(key);
        if (known !== undefined && known !== taskId) this.keyConflicts.push({ key, taskIds: [known, taskId] });
        this.keys.set(key, taskId);
        const earlier = this.acks.get(taskId);
        if (earlier !== undefined && earlier.key !== key) this.sharedIds.push({ taskId, keys: [earlier.key, key] });
        this.acks.set(taskId, { key, atMs: Number(e['atMs']), kind: e['kind'] as KindName, producer, tries: Number(e['tries']), servedBy: String(e['servedBy']), history: e['history'] as string[] | undefined });
        break;
      }
      case 'cancel': {
        const seen = { sentAtMs: Number(e['sentAtMs']), history: (e['history'] ?? []) as string[] };
        this.cancels.set(
          String(e['taskId']),
          e['answered'] === true ? { answered: true, cancelled: e['cancelled'] === true, state: String(e['state']), answeredAtMs: Number(e['answeredAtMs']), ...seen } : { answered: false, ...seen },
        );
        break;
      }
      case 'unacked':
        this.unacked.push({ key: String(e['key']), kind: String(e['kind']), lastError: String(e['lastError']), permanent: e['permanent'] === true });
        break;
      case 'done':
        this.producerReports.set(producer, e);
        break;
      case 'error':
        this.childErrors.push({ child: producer, message: String(e['message']) });
        break;
      default:
        break;
    }
  }

  onWorkerEvent(worker: string, e: ChildEvent): void {
    switch (e.event) {
      case 'exec': {
        const taskId = String(e['taskId']);
        const list = this.executions.get(taskId) ?? [];
        list.push({ attempt: Number(e['attempt']), workerId: String(e['workerId']), key: String(e['key']), dispatcherId: String(e['dispatcherId']), atMs: Number(e['atMs']) });
        this.executions.set(taskId, list);
        this.executionCount += 1;
        break;
      }
      case 'settled': {
        const taskId = String(e['taskId']);
        const list = this.settles.get(taskId) ?? [];
        list.push({
          attempt: Number(e['attempt']),
          status: String(e['status']),
          result: String(e['result']),
          reason: String(e['reason']),
          workerId: String(e['workerId']),
          dispatcherId: String(e['dispatcherId']),
          atMs: Number(e['atMs']),
        });
        this.settles.set(taskId, list);
        break;
      }
      case 'connected':
        this.workerConnects += 1;
        break;
      case 'done':
        this.workerReports.set(worker, (e['stats'] ?? {}) as Record<string, unknown>);
        break;
      case 'error':
        this.childErrors.push({ child: worker, message: String(e['message']) });
        break;
      default:
        break;
    }
  }
}
