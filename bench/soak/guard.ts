/**
 * The soak's side of orphan-guard.ts: starts the guard in its own process
 * group and tells it what to clean up should the soak die without its
 * teardown. `disarm()` once the teardown is done.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { PidListener } from './processes';

export class OrphanGuard implements PidListener {
  private readonly child: ChildProcess;

  private constructor(script: string) {
    this.child = spawn(process.execPath, [script], { stdio: ['pipe', 'ignore', 'inherit'], detached: true });
    this.child.stdin!.on('error', () => undefined);
  }

  static start(): OrphanGuard {
    return new OrphanGuard(path.join(__dirname, 'orphan-guard.js'));
  }

  private tell(message: Record<string, unknown>): void {
    this.child.stdin!.write(JSON.stringify(message) + '\n');
  }

  started(pid: number): void {
    this.tell({ pid });
  }

  exited(pid: number): void {
    this.tell({ gone: pid });
  }

  pgDataDir(dir: string): void {
    this.tell({ pgDataDir: dir });
  }

  schema(url: string, name: string): void {
    this.tell({ schema: { url, name } });
  }

  dir(dir: string): void {
    this.tell({ dir });
  }

  /** The soak cleaned up after itself; resolves once the guard has exited (at most 2 s). */
  async disarm(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.end(JSON.stringify({ disarm: true }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2_000);
    await exited;
    clearTimeout(timer);
  }
}
