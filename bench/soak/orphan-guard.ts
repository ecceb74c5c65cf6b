/**
 * The soak's guard against leftovers when the soak itself dies without its
 * teardown (SIGKILL, OOM, a crash of node). Started first, in its own process
 * group (a Ctrl-C in the terminal does not reach it), it reads JSON lines on
 * stdin: what to clean up, as the soak creates it.
 *
 *   {"pid": 123}            a child started     {"gone": 123}  that child exited
 *   {"pgDataDir": "/tmp/zonal-pg-…"}            the private PostgreSQL cluster
 *   {"schema": {"url": "postgres://…", "name": "zonal_soak_…"}}   a schema on a shared server
 *   {"dir": "/tmp/zonal-soak-…/data"}           a directory to delete
 *   {"disarm": true}        the soak cleaned up itself: exit
 *
 * If stdin ends without `disarm` (the soak is gone), it SIGTERMs the
 * children it was told of (SIGKILL after 10 s), stops the cluster (SIGQUIT to
 * its postmaster: an immediate shutdown), drops the schema, deletes the
 * directories, and exits. Each step is harmless when already done.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import * as readline from 'node:readline';

interface Leftovers {
  pids: Set<number>;
  pgDataDirs: Set<string>;
  schemas: { url: string; name: string }[];
  dirs: Set<string>;
}

const left: Leftovers = { pids: new Set(), pgDataDirs: new Set(), schemas: [], dirs: new Set() };
let disarmed = false;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let living = pids.filter(alive);
  while (living.length > 0 && Date.now() < deadline) {
    await sleep(100);
    living = living.filter(alive);
  }
  return living;
}

async function cleanUp(): Promise<void> {
  const pids = [...left.pids];
  for (const pid of pids) signal(pid, 'SIGTERM');
  for (const pid of await waitGone(pids, 10_000)) signal(pid, 'SIGKILL');
  for (const dir of left.pgDataDirs) {
    const pidFile = `${dir}/postmaster.pid`;
    if (existsSync(pidFile)) {
      const postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (Number.isInteger(postmaster) && postmaster > 0) {
        signal(postmaster, 'SIGQUIT');
        for (const pid of await waitGone([postmaster], 10_000)) signal(pid, 'SIGKILL');
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  for (const schema of left.schemas) {
    try {
      const { Client } = require('pg') as typeof import('pg');
      const client = new Client({ connectionString: schema.url, connectionTimeoutMillis: 5_000 });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema.name} CASCADE`).finally(() => client.end());
    } catch (err) {
      process.stderr.write(`soak orphan guard: could not drop schema ${schema.name}: ${String(err)}\n`);
    }
  }
  for (const dir of left.dirs) rmSync(dir, { recursive: true, force: true });
}

const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  let m: { pid?: number; gone?: number; pgDataDir?: string; schema?: { url: string; name: string }; dir?: string; disarm?: boolean };
  try {
    m = JSON.parse(line) as typeof m;
  } catch {
    return;
  }
  if (m.pid !== undefined) left.pids.add(m.pid);
  if (m.gone !== undefined) left.pids.delete(m.gone);
  if (m.pgDataDir !== undefined) left.pgDataDirs.add(m.pgDataDir);
  if (m.schema !== undefined) left.schemas.push(m.schema);
  if (m.dir !== undefined) left.dirs.add(m.dir);
  if (m.disarm === true) {
    disarmed = true;
    process.exit(0);
  }
});
input.on('close', () => {
  if (disarmed) return;
  cleanUp().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`soak orphan guard: ${String(err)}\n`);
      process.exit(1);
    },
  );
});
