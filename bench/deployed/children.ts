/** Spawning the bench's processes and reading their JSON-line events. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as readline from 'node:readline';

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves with the first event named `event` (rejects if the process exits first or reports an error). */
  next(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** The last event named `event` seen so far (not consumed by `next`). */
  latest(event: string): Record<string, unknown> | undefined;
  send(line: string): void;
  /** CPU seconds (user + system) the process has used, read from /proc. */
  cpuSeconds(): number;
  /** Resident set size in KiB, read from /proc. */
  rssKiB(): number;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const CLOCK_TICKS = 100;

/** Every child still running: killed when the orchestrator exits, whatever the reason. */
const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

export function startChild(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  alive.add(child);
  child.once('exit', () => alive.delete(child));
  const events: Record<string, unknown>[] = [];
  const lastByName = new Map<string, Record<string, unknown>>();
  const waiters = new Set<() => void>();
  const stderr: string[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    lastByName.set(String(parsed['event']), parsed);
    // Progress events are only read through latest(); keeping them would grow without bound.
    if (parsed['event'] !== 'count') events.push(parsed);
    for (const wake of [...waiters]) wake();
  });
  readline.createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr.push(line);
    if (stderr.length > 50) stderr.shift();
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      for (const wake of [...waiters]) wake();
      resolve();
    }),
  );
  const pid = child.pid!;
  return {
    name,
    process: child,
    next(event, timeoutMs = 300_000) {
      return new Promise((resolve, reject) => {
        let seen = 0;
        const check = (): void => {
          for (; seen < events.length; seen++) {
            const e = events[seen]!;
            if (e['event'] === 'error') return finish(() => reject(new Error(`${name}: ${String(e['message'])}`)));
            if (e['event'] === event) {
              events.splice(seen, 1);
              return finish(() => resolve(e));
            }
          }
          if (exited) finish(() => reject(new Error(`${name} exited before "${event}"; stderr: ${stderr.slice(-10).join('\n')}`)));
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`${name}: no "${event}" within ${timeoutMs} ms; stderr: ${stderr.slice(-10).join('\n')}`))), timeoutMs);
        const finish = (fn: () => void): void => {
          clearTimeout(timer);
          waiters.delete(check);
          fn();
        };
        waiters.add(check);
        check();
      });
    },
    latest(event) {
      return lastByName.get(event);
    },
    send(line) {
      child.stdin!.write(line + '\n');
    },
    cpuSeconds() {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
      } catch {
        return Number.NaN;
      }
    },
    rssKiB() {
      try {
        const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        return match ? Number(match[1]) : Number.NaN;
      } catch {
        return Number.NaN;
      }
    },
    async stop(signal = 'SIGTERM') {
      if (!exited) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    },
  };
}
