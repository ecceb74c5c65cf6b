import type { UpdateAckOut, WorkerUpdate } from './update';
import { sameUpdate } from './update';

export type SequenceVerdict =
  | { kind: 'next' }
  | { kind: 'resend'; ack: UpdateAckOut }
  | { kind: 'gap'; expected: number }
  | { kind: 'regression'; message: string };

/**
 * The per-stream `sequence_id` rule. The first update on a stream is 1 and
 * each next one exactly one more. The answers to the last `size` updates are
 * remembered, so a resend is answered again without being applied twice.
 *
 * Invariant: every sequence id in `answered` is <= `last` and > `last - size`.
 */
export class SequenceWindow {
  private last = 0;
  private readonly answered = new Map<number, { update: WorkerUpdate; ack: UpdateAckOut }>();

  constructor(private readonly size: number) {}

  get lastSequenceId(): number {
    return this.last;
  }

  check(update: WorkerUpdate): SequenceVerdict {
    const seq = update.sequenceId;
    if (seq === this.last + 1) return { kind: 'next' };
    if (seq > this.last + 1) return { kind: 'gap', expected: this.last + 1 };
    const previous = this.answered.get(seq);
    if (previous === undefined) {
      return { kind: 'regression', message: `sequence_id ${seq} is at or below ${this.last} and too old to verify` };
    }
    if (!sameUpdate(previous.update, update)) {
      return { kind: 'regression', message: `sequence_id ${seq} was already used for a different update` };
    }
    return { kind: 'resend', ack: previous.ack };
  }

  /** Records the answer to the update that `check` called 'next'. */
  record(update: WorkerUpdate, ack: UpdateAckOut): void {
    this.last = update.sequenceId;
    this.answered.set(update.sequenceId, { update, ack });
    this.answered.delete(update.sequenceId - this.size);
  }
}
