import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * `<data dir>/zonal.pid`: which process serves from a data dir, for
 * `zonal drain`. Written by `zonal serve` once it listens (temp + rename),
 * removed as the very last step of its stop. Every store has one (a
 * PostgreSQL dispatcher takes no data-dir lock, see start-server.ts), and it
 * is never trusted for more than finding the process: `zonal drain` checks
 * the host and that the pid is alive.
 */
export const PID_FILE = 'zonal.pid';

export interface ServingProcess {
  pid: number;
  host: string;
  startedAt: string;
}

export function writePidFile(dataDir: string, startedAtMs: number): ServingProcess {
  const entry: ServingProcess = { pid: process.pid, host: os.hostname(), startedAt: new Date(startedAtMs).toISOString() };
  mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, PID_FILE);
  writeFileSync(`${file}.tmp`, JSON.stringify(entry) + '\n');
  renameSync(`${file}.tmp`, file);
  return entry;
}

/** The entry, or undefined when the file is missing or unreadable. */
export function readPidFile(dataDir: string): ServingProcess | undefined {
  try {
    const v = JSON.parse(readFileSync(path.join(dataDir, PID_FILE), 'utf8')) as Partial<ServingProcess>;
    if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.host !== 'string' || typeof v.startedAt !== 'string') return undefined;
    return { pid: v.pid, host: v.host, startedAt: v.startedAt };
  } catch {
    return undefined;
  }
}

/** Removes the file if it still names `entry` (a newer process may own it by now). */
export function removePidFile(dataDir: string, entry: ServingProcess): void {
  const now = readPidFile(dataDir);
  if (now !== undefined && now.pid === entry.pid && now.startedAt === entry.startedAt) rmSync(path.join(dataDir, PID_FILE), { force: true });
}
