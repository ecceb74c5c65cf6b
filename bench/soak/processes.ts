/**
 * The soak's child processes: `node --require parent-watch.js <args>`, so a
 * child stops itself if the soak dies without stopping it (SIGKILL). Each
 * stdout line that is JSON goes to `onEvent` as it arrives and is not kept
 * (a producer or worker reports every task, for as long as the soak runs:
 * bench/deployed/children.ts keeps every event until it is read, so it is
 * used for none of them); stderr goes to `<logDir>/<name>.log`, with the last
 * lines kept for error messages.
 *
 * Invariant: every child that has not exited is in `running`, and is sent
 * SIGKILL when the soak process exits, whatever the reason.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type ChildEvent = Record<string, unknown> & { event?: unknown };

export interface ProcessSpec {
  name: string;
  /** Arguments after `node --require <parentWatch>`. */
  args: string[];
  env?: NodeJS.ProcessEnv;
  onEvent?: (event: ChildEvent) => void;
}

/** Told of every child started and every one gone, so an outside guard can stop them if the soak is killed (orphan-guard.ts). */
export interface PidListener {
  started(pid: number): void;
  exited(pid: number): void;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

const STDERR_TAIL = 20;

export class SoakProcess {
  readonly exited: Promise<ProcessExit>;
  private exit: ProcessExit | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly tail: string[] = [];
  private readonly log: WriteStream;
  /** The last event of each name (a few names per child). */
  private readonly lastByName = new Map<string, ChildEvent>();

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    logFile: string,
    onEvent: ((e: ChildEvent) => void) | undefined,
    pids: PidListener | undefined,
  ) {
    this.log = createWriteStream(logFile, { flags: 'a' });
    this.log.write(`--- ${name} pid ${child.pid} started ${new Date().toISOString()}\n`);
    running.add(child);
    if (child.pid !== undefined) pids?.started(child.pid);
    child.stdin!.on('error', () => undefined); // EPIPE once the child is gone; exit tells the story.
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      let event: ChildEvent;
      try {
        event = JSON.parse(line) as ChildEvent;
      } catch {
        this.log.write(`[stdout] ${line}\n`);
        return;
      }
      this.lastByName.set(String(event.event), event);
      onEvent?.(event);
      for (const wake of [...this.waiters]) wake();
    });
    readline.createInterface({ input: child.stderr! }).on('line', (line) => {
      this.log.write(line + '\n');
      this.tail.push(line);
      if (this.tail.length > STDERR_TAIL) this.tail.shift();
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        running.delete(child);
        if (child.pid !== undefined) pids?.exited(child.pid);
        this.exit = { code, signal };
        this.log.end(`--- ${name} pid ${child.pid} exited code ${code} signal ${signal} ${new Date().toISOString()}\n`);
        for (const wake of [...this.waiters]) wake();
        resolve(this.exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** The last lines the child wrote on stderr (for error messages). */
  stderrTail(lines = 8): string {
    return this.tail.slice(-lines).join('\n');
  }

  /**
   * Resolves with the child's event named `event`: the last one it printed,
   * or the next; rejects if the child exits first or after `timeoutMs`.
   */
  waitFor(event: string, timeoutMs: number): Promise<ChildEvent> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const e = this.lastByName.get(event);
        if (e !== undefined) return finish(() => resolve(e));
        if (this.exit !== undefined) finish(() => reject(new Error(`${this.name} exited (code ${this.exit!.code}, signal ${this.exit!.signal}) before "${event}"; stderr:\n${this.stderrTail()}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`${this.name}: no "${event}" within ${timeoutMs} ms; stderr:\n${this.stderrTail()}`))), timeoutMs);
      const finish = (fn: () => void): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        fn();
      };
      this.waiters.add(check);
      check();
    });
  }

  send(line: string): void {
    if (this.running) this.child.stdin!.write(line + '\n');
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** `signal` (SIGTERM), then SIGKILL after `graceMs`; resolves once the child is gone. */
  async stop(graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<ProcessExit> {
    if (!this.running) return this.exit!;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

/** Starts `node --require <parentWatch> ...spec.args`, its stderr appended to `<logDir>/<name>.log`. */
export function startProcess(spec: ProcessSpec, common: { parentWatch: string; logDir: string; pids?: PidListener }): SoakProcess {
  const child = spawn(process.execPath, ['--require', common.parentWatch, ...spec.args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ZONAL_DEMO_PARENT_PID: String(process.pid), ...spec.env },
  });
  return new SoakProcess(spec.name, child, path.join(common.logDir, `${spec.name}.log`), spec.onEvent, common.pids);
}

/** Every soak child still running (teardown's last resort). */
export function killAllChildren(): void {
  for (const child of running) child.kill('SIGKILL');
}
