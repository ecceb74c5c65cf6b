/**
 * What a failover child (producer or worker) saw, kept in its own memory and
 * asked about by the orchestrator over stdin, so no per-call line crosses the
 * pipe: `{"cmd": ..., "id": ..., ...}` in, one `answer-<id>` event out.
 * Every time in here is `epochMs()` (bench/deployed/clock.ts), comparable
 * with the orchestrator's signal stamps.
 */
import * as readline from 'node:readline';
import { emit } from '../../deployed/messages';

export interface Command {
  cmd: string;
  id: string;
  [key: string]: unknown;
}

interface Waiter<T> {
  match: (item: T) => boolean;
  resolve: (item: T | undefined) => void;
}

/** Items in arrival order (older than `keepMs` dropped), and waiters for the first one to match. */
export class History<T> {
  readonly items: T[] = [];
  private readonly waiters = new Set<Waiter<T>>();

  constructor(
    private readonly timeOf: (item: T) => number,
    private readonly keepMs = 120_000,
  ) {}

  add(item: T): void {
    this.items.push(item);
    const cutoff = this.timeOf(item) - this.keepMs;
    let drop = 0;
    while (drop < this.items.length && this.timeOf(this.items[drop]!) < cutoff) drop += 1;
    if (drop > 0) this.items.splice(0, drop);
    this.changed();
  }

  /** An item was updated in place: waiters look again. */
  changed(): void {
    for (const w of [...this.waiters]) {
      const found = this.items.find(w.match);
      if (found !== undefined) {
        this.waiters.delete(w);
        w.resolve(found);
      }
    }
  }

  /** The first item that matches, now or when it comes; undefined after `timeoutMs`. */
  first(match: (item: T) => boolean, timeoutMs: number): Promise<T | undefined> {
    const found = this.items.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => {
      const waiter: Waiter<T> = {
        match,
        resolve: (item) => {
          clearTimeout(timer);
          resolve(item);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }
}

/** Reads commands from stdin; each handler's result is printed as `answer-<id>`. */
export function answerCommands(handlers: Record<string, (c: Command) => Promise<Record<string, unknown>> | Record<string, unknown>>, onStop: () => Promise<void>): void {
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    let c: Command;
    try {
      c = JSON.parse(line) as Command;
    } catch {
      if (line.trim() === 'stop') void onStop();
      return;
    }
    if (c.cmd === 'stop') {
      void onStop();
      return;
    }
    const handler = handlers[c.cmd];
    if (handler === undefined) {
      emit(`answer-${c.id}`, { unknownCommand: c.cmd });
      return;
    }
    Promise.resolve()
      .then(() => handler(c))
      .then(
        (answer) => emit(`answer-${c.id}`, answer),
        (err: unknown) => emit(`answer-${c.id}`, { failed: String(err) }),
      );
  });
}
