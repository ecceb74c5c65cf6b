import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/**
 * Request/answer over the IPC channel of a forked bench child, so every
 * figure of a child (RSS, CPU, counters) is read inside that child.
 *
 * Invariant: each request gets exactly one answer or one rejection (timeout,
 * child exit); a child whose parent goes away exits on its own.
 */
interface IpcRequest {
  id: number;
  cmd: string;
  args: unknown;
}

interface IpcAnswer {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** Child-side figures every bench child reports the same way. */
export interface ProcessSample {
  rssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  /** process.cpuUsage(): user + system, microseconds since the process started. */
  cpuUs: number;
  /** performance.now() in the child when sampled, for rates. */
  atMs: number;
}

type Handler = (args: any) => unknown; // any: each child's handlers narrow their own argument shapes.

/** Child side: answers requests with `handlers`; exits when the parent disconnects. */
export function serveIpc(handlers: Record<string, Handler>): void {
  if (process.send === undefined) throw new Error('this bench module must be forked with an IPC channel');
  const send = process.send.bind(process);
  process.on('message', (raw: unknown) => {
    const request = raw as IpcRequest;
    const handler = handlers[request.cmd];
    const reply = (answer: Omit<IpcAnswer, 'id'>): void => {
      if (process.connected) send({ id: request.id, ...answer });
    };
    if (handler === undefined) {
      reply({ ok: false, error: `unknown command ${request.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(request.args))
      .then(
        (result) => reply({ ok: true, result }),
        (err: unknown) => reply({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
  // Ctrl-C reaches the whole process group: the parent ends us by disconnecting, so our exit handlers run.
  process.on('SIGINT', () => undefined);
}

/** Child side: this process's figures, after a full GC when asked (the child runs with --expose-gc). */
export function sampleProcess(collect: boolean): ProcessSample {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (collect && gc !== undefined) {
    gc();
    gc();
  }
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    externalBytes: memory.external,
    cpuUs: cpu.user + cpu.system,
    atMs: performance.now(),
  };
}

/** Parent side: one forked bench child. */
export class BenchChild {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private exited = false;
  private readonly exitWaiters: (() => void)[] = [];

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (raw: unknown) => {
      const answer = raw as IpcAnswer;
      const waiter = this.pending.get(answer.id);
      if (waiter === undefined) return;
      this.pending.delete(answer.id);
      clearTimeout(waiter.timer);
      if (answer.ok) waiter.resolve(answer.result);
      else waiter.reject(new Error(`${name}: ${answer.error ?? 'failed'}`));
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const [id, waiter] of this.pending) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error(`${name} exited (code ${code}, signal ${signal}) before answering request ${id}`));
      }
      this.pending.clear();
      for (const w of this.exitWaiters.splice(0)) w();
    });
  }

  /** Forks `modulePath` with its own V8 flags (never the parent's). */
  static fork(name: string, modulePath: string, execArgv: string[], env: NodeJS.ProcessEnv = {}): BenchChild {
    const child = fork(modulePath, [], { execArgv, env: { ...process.env, ZONAL_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new BenchChild(name, child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  request<T>(cmd: string, args: unknown = {}, timeoutMs = 30_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ id, cmd, args } satisfies IpcRequest);
    });
  }

  /** Last resort (watchdog): SIGKILL now. */
  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  /** Disconnects (the child exits on its own), then SIGKILLs it if it is still there after `graceMs`. */
  async close(graceMs = 5_000): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => {
      if (!this.exited) this.child.kill('SIGKILL');
    }, graceMs);
    await gone;
    clearTimeout(timer);
  }
}
