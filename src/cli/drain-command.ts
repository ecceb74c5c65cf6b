import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { readPidFile } from './pid-file';
import { num, str, UsageError, type FlagSpec, type FlagValues } from './flags';

export const DRAIN_SUMMARY = 'Drains the dispatcher that holds --data-dir on this host (SIGTERM: DRAINING in xDS, GoAway, in-flight tasks finish) and waits until it has let go of it. For a Kubernetes preStop hook.';

export const DRAIN_FLAGS: FlagSpec[] = [
  { name: 'data-dir', env: 'ZONAL_DATA_DIR', type: 'string', default: './data', description: "The dispatcher's data dir (its --data-dir): the process holding it is drained." },
  { name: 'timeout-ms', env: 'ZONAL_DRAIN_TIMEOUT_MS', type: 'number', default: 60_000, description: 'Longest wait for the dispatcher to finish; exits 1 after it.' },
];

const POLL_MS = 100;

/**
 * `zonal drain`: the dispatcher's own SIGTERM path, started from outside and
 * waited for. It finds the process in the data dir's pid file (pid-file.ts,
 * written by `zonal serve` once it listens, whatever the store), sends it
 * SIGTERM, and returns once the entry is gone or the process is: the
 * dispatcher removes the file as its very last step, after the drain, the
 * final store flush and closing its ports. So a Kubernetes `preStop` running it holds the pod's
 * SIGTERM back until the drain is done, and `terminationGracePeriodSeconds`
 * bounds both together.
 *
 * It signals only a process on this host (the file may sit on a shared
 * volume), and a data dir no one serves from is nothing to drain (exit 0).
 */
export async function drainCommand(values: FlagValues): Promise<void> {
  const dataDir = str(values, 'data-dir');
  const timeoutMs = num(values, 'timeout-ms') ?? 60_000;
  if (!(timeoutMs > 0)) throw new UsageError('--timeout-ms must be above 0');
  const holder = readPidFile(dataDir);
  if (holder === undefined) {
    process.stdout.write(JSON.stringify({ event: 'drained', dataDir, pid: null, note: 'no dispatcher serves from this data dir' }) + '\n');
    return;
  }
  if (holder.host !== os.hostname()) {
    throw new UsageError(`the dispatcher serving from ${dataDir} runs on host "${holder.host}", not this one ("${os.hostname()}"): run zonal drain there`);
  }
  if (!looksLikeServe(holder.pid)) {
    process.stdout.write(JSON.stringify({ event: 'drained', dataDir, pid: holder.pid, note: 'the pid file is stale: that process is no zonal serve' }) + '\n');
    return;
  }
  const startedAtMs = Date.now();
  if (!signal(holder.pid, 'SIGTERM')) {
    process.stdout.write(JSON.stringify({ event: 'drained', dataDir, pid: holder.pid, note: 'the holder had already exited' }) + '\n');
    return;
  }
  process.stdout.write(JSON.stringify({ event: 'draining', dataDir, pid: holder.pid }) + '\n');
  for (;;) {
    const now = readPidFile(dataDir);
    const same = now !== undefined && now.pid === holder.pid && now.startedAt === holder.startedAt;
    if (!same || !signal(holder.pid, 0)) {
      process.stdout.write(JSON.stringify({ event: 'drained', dataDir, pid: holder.pid, ms: Date.now() - startedAtMs }) + '\n');
      return;
    }
    if (Date.now() - startedAtMs >= timeoutMs) {
      process.stderr.write(`zonal drain: the dispatcher (pid ${holder.pid}) still serves from ${dataDir} after ${timeoutMs} ms; it keeps draining (its --drain-grace-ms and --drain-propagation-ms bound it)\n`);
      process.exitCode = 1;
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * A pid file left by a dispatcher that was killed can name a process that
 * reused the pid: signal it only if its command line is a `serve`. Where
 * /proc is missing (not Linux), the host and liveness checks are all there is.
 */
function looksLikeServe(pid: number): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true;
  }
  return cmdline.split('\0').includes('serve');
}

/** Sends `sig` (0: only checks); false when the process is gone. */
function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}
