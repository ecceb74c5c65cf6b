import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

/**
 * The child processes of a demo (`npm run demo`, `npm run demo:zones`):
 * each in its own process group (a terminal's Ctrl-C reaches only the demo,
 * which stops them in order), each preloaded with parent-watch.js (if the
 * demo dies without stopping them, they stop themselves), their JSON stdout
 * lines collected as events and their stderr kept as a short tail.
 */
const PARENT_WATCH = path.join(__dirname, 'parent-watch.js');

export interface DemoChild {
  name: string;
  child: ChildProcess;
  events: Record<string, unknown>[];
  stderrTail: string[];
  exited: Promise<void>;
  waitForEvent(name: string, timeoutMs: number): Promise<Record<string, unknown>>;
}

export interface DemoChildOptions {
  /** Added to this process's environment (after ZONAL_LOG_LEVEL=warn and the parent pid). */
  env?: NodeJS.ProcessEnv;
  stdin?: 'ignore' | 'pipe';
  /** Called with every stdout event. */
  onEvent?: (event: Record<string, unknown>) => void;
  /** Most events kept (older ones are dropped in halves); default: all. */
  keepEvents?: number;
}

export function alive(c: DemoChild): boolean {
  return c.child.exitCode === null && c.child.signalCode === null;
}

/** A JSON log line below error level: kept for the failure report, not printed (SLO warnings and info logs would flood the terminal). */
function isQuietLogLine(line: string): boolean {
  try {
    const level = (JSON.parse(line) as { level?: unknown }).level;
    return level !== 'error' && level !== 'fatal';
  } catch {
    return false;
  }
}

/** Starts `node <nodeArgs…>` (a script and its arguments) as a demo child. */
export function startDemoChild(name: string, nodeArgs: string[], options: DemoChildOptions = {}): DemoChild {
  const child = spawn(process.execPath, ['--require', PARENT_WATCH, ...nodeArgs], {
    env: { ...process.env, ZONAL_LOG_LEVEL: 'warn', ZONAL_DEMO_PARENT_PID: String(process.pid), ...options.env },
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    detached: true,
  });
  // A write to a child that just died (EPIPE) is no error of ours: its exit is reported.
  child.stdin?.on('error', () => undefined);
  const keep = options.keepEvents ?? Number.POSITIVE_INFINITY;
  const events: Record<string, unknown>[] = [];
  const stderrTail: string[] = [];
  const listeners = new Set<() => void>();
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(line) as Record<string, unknown>;
    } catch {
      event = { event: 'text', line };
    }
    events.push(event);
    if (events.length > keep) events.splice(0, Math.ceil(keep / 2));
    options.onEvent?.(event);
    for (const l of [...listeners]) l();
  });
  readline.createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrTail.push(line);
    if (stderrTail.length > 20) stderrTail.shift();
    if (!isQuietLogLine(line)) process.stderr.write(`[${name}] ${line}\n`);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    for (const l of [...listeners]) l();
  });
  const c: DemoChild = {
    name,
    child,
    events,
    stderrTail,
    exited,
    waitForEvent(event, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = events.find((e) => e['event'] === event);
          if (found !== undefined) {
            done();
            resolve(found);
          } else if (!alive(c)) {
            done();
            reject(new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready: ${stderrTail.slice(-5).join(' | ') || 'no output'}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name} was not ready within ${timeoutMs} ms: ${stderrTail.slice(-5).join(' | ') || 'no output'}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
  };
  return c;
}

/** SIGTERM, then SIGKILL (said on stderr, prefixed `who`) for whoever is still there after `timeoutMs`. */
export async function stopDemoChildren(list: DemoChild[], timeoutMs: number, who: string): Promise<void> {
  for (const c of list) if (alive(c)) c.child.kill('SIGTERM');
  const all = Promise.all(list.map((c) => c.exited));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
  if ((await Promise.race([all, late])) === 'late') {
    for (const c of list) {
      if (!alive(c)) continue;
      process.stderr.write(`${who}: ${c.name} did not stop within ${timeoutMs} ms of SIGTERM; killing it\n`);
      c.child.kill('SIGKILL');
    }
    await all;
  }
  clearTimeout(timer);
}

export function killDemoChildrenNow(list: DemoChild[]): void {
  for (const c of list) if (alive(c)) c.child.kill('SIGKILL');
}

/**
 * Tells a first stop signal from a second one. A script that npm runs gets a
 * terminal's Ctrl-C twice, within milliseconds: from the terminal, and
 * forwarded by npm (the scripts `exec` node, so npm's forwarded SIGTERM
 * reaches it). A signal within `sameSignalMs` of the first is that same one.
 */
export function stopSignalCounter(sameSignalMs = 500, nowMs: () => number = () => performance.now()): () => 'first' | 'same' | 'again' {
  let firstAtMs: number | undefined;
  return () => {
    const now = nowMs();
    if (firstAtMs === undefined) {
      firstAtMs = now;
      return 'first';
    }
    return now - firstAtMs < sameSignalMs ? 'same' : 'again';
  };
}

/** Ctrl-C or SIGTERM stops the demo; a second one while it stops kills what is left, without waiting for graceful exits. */
export function onStopSignals(stopping: () => boolean, stop: (signal: NodeJS.Signals) => void, killNow: () => void): void {
  const seen = stopSignalCounter();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      const which = seen();
      if (which === 'same') return;
      if (which === 'again' && stopping()) killNow();
      else stop(signal);
    });
  }
}

/** In a child: resolves once its parent writes "go" on its stdin (every child is ready, so the load starts together). */
export function waitForGo(): Promise<void> {
  return new Promise<void>((resolve) => {
    const lines = readline.createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      if (line.trim() !== 'go') return;
      lines.close();
      resolve();
    });
  });
}
