/**
 * The README's `npm start`, stopped as a supervisor or `timeout` stops it: a
 * SIGTERM to npm. npm passes the signal to its script's shell; Debian's sh
 * (dash) does not pass it on to a child it waits for, so a script must `exec`
 * its long-running node process or the signal never reaches it and the
 * dispatcher runs on, orphaned (found by an outside review, on
 * `npm run demo:zones`). The other long-running scripts are checked by shape.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../support/server-harness';

const ROOT = path.resolve(__dirname, '..', '..');
const LONG_RUNNING = ['start', 'demo', 'demo:zones', 'soak', 'bench', 'bench:idle', 'bench:deployed'];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm scripts pass signals to their node process', () => {
  const dirs: string[] = [];
  const pids: number[] = [];
  afterEach(() => {
    for (const pid of pids.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('each long-running script ends by exec-ing node, so the signal npm passes on reaches it', () => {
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const name of LONG_RUNNING) {
      const last = scripts[name]!.split('&&').pop()!.trim();
      expect(last, name).toMatch(/^exec node /);
    }
  });

  it('SIGTERM to `npm start` drains and stops the dispatcher: exit 0, no process or pid file left', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'zonal-npm-start-'));
    dirs.push(dir);
    const npm = spawn('npm', ['start', '--', `--data-dir=${dir}`, '--grpc-address=127.0.0.1:0', '--admin-address=127.0.0.1:0', '--xds-address=off'], {
      cwd: ROOT,
      env: { ...process.env, ZONAL_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    pids.push(npm.pid!);
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    const listening = await new Promise<{ pid: number }>((resolve, reject) => {
      npm.once('exit', () => reject(new Error('npm start exited before listening')));
      readline.createInterface({ input: npm.stdout! }).on('line', (line) => {
        if (line.startsWith('{') && (JSON.parse(line) as { event?: string }).event === 'listening') resolve(JSON.parse(line) as { pid: number });
      });
    });
    pids.push(listening.pid);
    expect(listening.pid).not.toBe(npm.pid);
    expect(existsSync(path.join(dir, 'zonal.pid'))).toBe(true);
    npm.kill('SIGTERM');
    expect(await exited).toBe(0);
    await eventually(() => !alive(listening.pid), 15_000, 'the dispatcher to exit');
    expect(existsSync(path.join(dir, 'zonal.pid'))).toBe(false);
  }, 60_000);
});
