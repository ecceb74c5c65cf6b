/**
 * `npm run bench:idle` (issue §9, run by hand, not asserted in CI): holds
 * 10,000 idle worker streams on one dispatcher and prints RSS per stream,
 * heartbeat CPU per second and CPU per heartbeat, beside a bare grpc-js
 * server that sends the same messages at the same rate in the same run.
 *
 * Processes (each server alone in its process, so its RSS and CPU are its own):
 *   idle-dispatcher.js  a Zonal dispatcher, default options (budget changed only for the faster run)
 *   idle-raw-server.js  the baseline: same proto, same Connect method, nothing else; it replays the
 *                       dispatcher's Pings as its clients recorded them (same streams, same milliseconds)
 *   idle-clients.js     raw grpc-js streams (no SDK): Hello, then a Pong for every Ping
 *
 * Why replay: on loopback most of the cost of a Ping is the write, the flush
 * and the syscall of its connection, so CPU per message depends mostly on how
 * many Pings share a flush. Pinging the same streams in the same milliseconds
 * as the dispatcher did makes the baseline pay for the same flushes. With
 * ZONAL_BENCH_IDLE_RAW_PACING=random-phase (every Ping on a flush of its
 * own) the baseline alone gets well over 1.5x costlier; tick:<ms> batches.
 *
 * Per server: RSS after a full GC before any stream and after all streams are
 * welcomed and warmed up -> RSS per stream; then, over a window, the server's
 * CPU time (process.cpuUsage) and the Pings it wrote -> CPU per heartbeat.
 * Both figures include everything the server did in the window: writing the
 * Ping, reading and handling the Pong, timers, GC.
 *
 * Environment: ZONAL_BENCH_IDLE_STREAMS (10000), _CHANNELS (100), _CLIENTS
 * (client processes, 1), _WARMUP_MS (10000), _WINDOW_MS (20000),
 * _FAST_BUDGET (heartbeat budget of the faster run, 10000; 0 skips it),
 * _RAW_PACING (replay, random-phase or tick:<ms>; see idle-raw-server.ts); ZONAL_BENCH_CPU_PROF=<dir>
 * profiles both servers over their first window and prints where the time went
 * (the profiler's own cost inflates the CPU figures of that run).
 */
import { mkdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClientStats, OpenArgs } from './idle-clients';
import type { DispatcherSample, DispatcherStarted } from './idle-dispatcher';
import { BenchChild, type ProcessSample } from './idle-ipc';
import type { ProfileSummary } from './idle-profile';
import type { Pacing, RawSample } from './idle-raw-server';
import { burstOf, connectionsPerBurst, mergeSchedules, replayPeriodMs, type SendSchedule } from './idle-schedule';

/** How the baseline paces its Pings; 'replay' takes the dispatcher's recorded schedule at run time. */
type PacingChoice = Exclude<Pacing, { kind: 'replay' }> | { kind: 'replay' };

function parsePacing(raw: string): PacingChoice {
  if (raw === 'random-phase' || raw === 'replay') return { kind: raw };
  const tick = /^tick:(\d+)$/.exec(raw);
  if (tick !== null && Number(tick[1]) >= 1) return { kind: 'tick', tickMs: Number(tick[1]) };
  throw new RangeError(`ZONAL_BENCH_IDLE_RAW_PACING must be replay, random-phase or tick:<ms>, got ${raw}`);
}

function describePacing(p: PacingChoice): string {
  switch (p.kind) {
    case 'replay':
      return "replaying the dispatcher's own sends (same streams, same milliseconds)";
    case 'random-phase':
      return 'a timer per stream, phases spread at random';
    case 'tick':
      return `one timer every ${p.tickMs} ms walking the streams`;
  }
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a whole number >= 0, got ${raw}`);
  return value;
}

const STREAMS = envInt('ZONAL_BENCH_IDLE_STREAMS', 10_000);
const CHANNELS = envInt('ZONAL_BENCH_IDLE_CHANNELS', 100);
const CLIENT_PROCESSES = envInt('ZONAL_BENCH_IDLE_CLIENTS', 1);
const WARMUP_MS = envInt('ZONAL_BENCH_IDLE_WARMUP_MS', 10_000);
const WINDOW_MS = envInt('ZONAL_BENCH_IDLE_WINDOW_MS', 20_000);
const FAST_BUDGET = envInt('ZONAL_BENCH_IDLE_FAST_BUDGET', 10_000);
const RAW_PACING = parsePacing(process.env['ZONAL_BENCH_IDLE_RAW_PACING'] ?? 'replay');
const PROFILE_DIR = process.env['ZONAL_BENCH_CPU_PROF'] ?? '';
/** Warm-up of the baseline's second rate (its streams are already open and settled). */
const RATE_CHANGE_WARMUP_MS = 3_000;
/** The whole run is killed past this, children included. */
const WATCHDOG_MS = 6 * 60_000;
const SERVER_EXEC_ARGV = ['--expose-gc'];

const TARGET_CPU_RATIO = 1.5;
const TARGET_RSS_PER_STREAM_BYTES = 20 * 1024;

/** Every child still running, so any exit path can end them. */
const children = new Set<BenchChild>();

function spawn(name: string, file: string, execArgv: string[]): BenchChild {
  const child = BenchChild.fork(name, path.join(__dirname, file), execArgv);
  children.add(child);
  return child;
}

async function closeChild(child: BenchChild): Promise<void> {
  await child.close();
  children.delete(child);
}

interface WindowFigures {
  wallMs: number;
  cpuUs: number;
  /** Pings the server wrote in the window. */
  messages: number;
  /** Pings the clients received in the window (a cross-check). */
  clientPings: number;
  keepaliveUpdates: number;
  /** When, and on which streams, the server wrote the Pings the clients got. */
  schedule: SendSchedule;
  clientCpuUs: number;
  perSec: number;
  cpuUsPerMessage: number;
  cpuMsPerSec: number;
  profile?: ProfileSummary;
}

interface RunFigures {
  label: string;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  heapBeforeBytes: number;
  heapAfterBytes: number;
  /** Server CPU per second with no stream open. */
  floorMsPerSec: number;
  openMs: number;
  windows: WindowFigures[];
  /** Streams that ended before the run closed them, and the first error the clients saw. */
  endedEarly: number;
  firstError: string;
  /** Messages other than Welcome, Ping and KeepaliveUpdate the clients got (idle streams expect none). */
  otherMessages: number;
  serverNote: string;
}

const rssPerStream = (r: RunFigures): number => (r.rssAfterBytes - r.rssBeforeBytes) / STREAMS;
const heapPerStream = (r: RunFigures): number => (r.heapAfterBytes - r.heapBeforeBytes) / STREAMS;

async function openClients(target: string, label: string): Promise<{ clients: BenchChild[]; openMs: number }> {
  const clients = Array.from({ length: CLIENT_PROCESSES }, (_, i) => spawn(`${label}-clients-${i}`, 'idle-clients.js', []));
  const channelsEach = CHANNELS / CLIENT_PROCESSES;
  const t0 = performance.now();
  await Promise.all(
    clients.map((client, i) =>
      client.request<{ welcomed: number }>(
        'open',
        {
          target,
          channels: channelsEach,
          streamsPerChannel: STREAMS / CHANNELS,
          channelConcurrency: 10,
          firstIndex: (i * STREAMS) / CLIENT_PROCESSES,
          timeoutMs: 120_000,
        } satisfies OpenArgs,
        130_000,
      ),
    ),
  );
  return { clients, openMs: performance.now() - t0 };
}

async function closeClients(clients: BenchChild[]): Promise<void> {
  await Promise.all(clients.map((c) => c.request('close', {}, 10_000).catch(() => undefined)));
  await Promise.all(clients.map((c) => closeChild(c)));
}

async function clientTotals(clients: BenchChild[]): Promise<ClientStats> {
  const all = await Promise.all(clients.map((c) => c.request<ClientStats>('stats')));
  return all.reduce((a, b) => ({
    ...a,
    cpuUs: a.cpuUs + b.cpuUs,
    streams: a.streams + b.streams,
    welcomed: a.welcomed + b.welcomed,
    pings: a.pings + b.pings,
    keepaliveUpdates: a.keepaliveUpdates + b.keepaliveUpdates,
    otherMessages: a.otherMessages + b.otherMessages,
    endedEarly: a.endedEarly + b.endedEarly,
    firstError: a.firstError !== '' ? a.firstError : b.firstError,
  }));
}

/** The baseline's pacing for the window that matches `zonal`. */
function pacingFor(zonal: WindowFigures): Pacing {
  if (RAW_PACING.kind !== 'replay') return RAW_PACING;
  return { kind: 'replay', schedule: zonal.schedule, periodMs: replayPeriodMs(zonal.schedule, zonal.perSec) };
}

/** CPU and messages of `server` over one window; `sent` reads its Ping counter. */
async function measureWindow<S extends ProcessSample>(server: BenchChild, clients: BenchChild[], sent: (s: S) => number, profileAs: string): Promise<WindowFigures> {
  if (profileAs !== '') await server.request('profileStart', { samplingIntervalUs: 500 });
  await Promise.all(clients.map((c) => c.request('recordStart')));
  const [s0, c0] = await Promise.all([server.request<S>('sample', { gc: false }), clientTotals(clients)]);
  await sleep(WINDOW_MS);
  const [s1, c1] = await Promise.all([server.request<S>('sample', { gc: false }), clientTotals(clients)]);
  const recorded = await Promise.all(clients.map((c) => c.request<[number, number[]][]>('recordStop')));
  const profile = profileAs !== '' ? await server.request<ProfileSummary>('profileStop', { file: path.join(PROFILE_DIR, `${profileAs}.cpuprofile`), top: 20 }) : undefined;
  const wallMs = s1.atMs - s0.atMs;
  const cpuUs = s1.cpuUs - s0.cpuUs;
  const messages = sent(s1) - sent(s0);
  return {
    wallMs,
    cpuUs,
    messages,
    clientPings: c1.pings - c0.pings,
    keepaliveUpdates: c1.keepaliveUpdates - c0.keepaliveUpdates,
    schedule: mergeSchedules(recorded),
    clientCpuUs: c1.cpuUs - c0.cpuUs,
    perSec: messages / (wallMs / 1000),
    cpuUsPerMessage: messages > 0 ? cpuUs / messages : NaN,
    cpuMsPerSec: cpuUs / 1000 / (wallMs / 1000),
    ...(profile !== undefined ? { profile } : {}),
  };
}

/** RSS and heap after a full GC, and the CPU floor with no streams (2 s). */
async function baseline<S extends ProcessSample>(server: BenchChild): Promise<{ before: S; floorMsPerSec: number }> {
  await sleep(1_000);
  const before = await server.request<S>('sample', { gc: true });
  const idle0 = await server.request<S>('sample', { gc: false });
  await sleep(2_000);
  const idle1 = await server.request<S>('sample', { gc: false });
  return { before, floorMsPerSec: (idle1.cpuUs - idle0.cpuUs) / (idle1.atMs - idle0.atMs) };
}

async function runZonal(label: string, heartbeatBudgetPerSec: number | undefined, profile: boolean): Promise<RunFigures> {
  const server = spawn(label, 'idle-dispatcher.js', SERVER_EXEC_ARGV);
  let clients: BenchChild[] = [];
  try {
    const started = await server.request<DispatcherStarted>('start', { heartbeatBudgetPerSec });
    process.stderr.write(`[bench:idle] ${label}: dispatcher pid ${server.pid} on ${started.address}, heartbeat budget ${started.heartbeatBudgetPerSec}/s; opening ${STREAMS} streams\n`);
    const { before, floorMsPerSec } = await baseline<DispatcherSample>(server);
    const opened = await openClients(started.address, label);
    clients = opened.clients;
    process.stderr.write(`[bench:idle] ${label}: ${STREAMS} streams welcomed in ${(opened.openMs / 1000).toFixed(1)} s; warm-up ${WARMUP_MS / 1000} s\n`);
    await sleep(WARMUP_MS);
    const after = await server.request<DispatcherSample>('sample', { gc: true });
    process.stderr.write(`[bench:idle] ${label}: measuring ${WINDOW_MS / 1000} s\n`);
    const window = await measureWindow<DispatcherSample>(server, clients, (s) => s.heartbeatsSent, profile ? label : '');
    const end = await server.request<DispatcherSample>('sample', { gc: false });
    const c = await clientTotals(clients);
    return {
      label,
      rssBeforeBytes: before.rssBytes,
      rssAfterBytes: after.rssBytes,
      heapBeforeBytes: before.heapUsedBytes,
      heapAfterBytes: after.heapUsedBytes,
      floorMsPerSec,
      openMs: opened.openMs,
      windows: [window],
      endedEarly: c.endedEarly,
      firstError: c.firstError,
      otherMessages: c.otherMessages,
      serverNote: `${end.sessions} sessions open at the end, ${end.sessionsClosed} closed, ${end.errorsReported} errors reported`,
    };
  } finally {
    await closeClients(clients);
    await server.request('stop', {}, 15_000).catch((err: unknown) => process.stderr.write(`[bench:idle] ${label}: stop failed: ${String(err)}\n`));
    await closeChild(server);
  }
}

async function runRaw(matching: WindowFigures[], profile: boolean): Promise<RunFigures> {
  const label = 'raw-grpc-js';
  const server = spawn(label, 'idle-raw-server.js', SERVER_EXEC_ARGV);
  let clients: BenchChild[] = [];
  try {
    const { address } = await server.request<{ address: string }>('start');
    process.stderr.write(`[bench:idle] ${label}: server pid ${server.pid} on ${address}; opening ${STREAMS} streams\n`);
    const { before, floorMsPerSec } = await baseline<RawSample>(server);
    const opened = await openClients(address, label);
    clients = opened.clients;
    const windows: WindowFigures[] = [];
    let after: RawSample | undefined;
    for (const [i, zonal] of matching.entries()) {
      await server.request('rate', { perSec: zonal.perSec, pacing: pacingFor(zonal) });
      process.stderr.write(`[bench:idle] ${label}: ${Math.round(zonal.perSec)} Pings/s; warm-up, then measuring ${WINDOW_MS / 1000} s\n`);
      await sleep(i === 0 ? WARMUP_MS : RATE_CHANGE_WARMUP_MS);
      if (i === 0) after = await server.request<RawSample>('sample', { gc: true });
      windows.push(await measureWindow<RawSample>(server, clients, (s) => s.pingsSent, profile && i === 0 ? label : ''));
    }
    const end = await server.request<RawSample>('sample', { gc: false });
    const c = await clientTotals(clients);
    return {
      label,
      rssBeforeBytes: before.rssBytes,
      rssAfterBytes: after?.rssBytes ?? NaN,
      heapBeforeBytes: before.heapUsedBytes,
      heapAfterBytes: after?.heapUsedBytes ?? NaN,
      floorMsPerSec,
      openMs: opened.openMs,
      windows,
      endedEarly: c.endedEarly,
      firstError: c.firstError,
      otherMessages: c.otherMessages,
      serverNote: `${end.streams} streams open at the end, ${end.pongsReceived} Pongs received in all`,
    };
  } finally {
    await closeClients(clients);
    await server.request('stop', {}, 15_000).catch(() => undefined);
    await closeChild(server);
  }
}

// ---------------------------------------------------------------- report

const kib = (bytes: number): string => (bytes / 1024).toFixed(1);
const fixed = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');

function printReport(zDefault: RunFigures, zFast: RunFigures | undefined, raw: RunFigures): void {
  const rows: [string, string, string, string][] = [];
  const ratio = (a: number, b: number): string => (Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : 'n/a');
  rows.push(['RSS per stream, default settings (KiB)', kib(rssPerStream(zDefault)), kib(rssPerStream(raw)), ratio(rssPerStream(zDefault), rssPerStream(raw))]);
  const windowRows = (name: string, z: WindowFigures, r: WindowFigures): void => {
    rows.push([`${name}: heartbeats per second`, fixed(z.perSec, 0), fixed(r.perSec, 0), ratio(z.perSec, r.perSec)]);
    rows.push([`${name}: CPU per heartbeat (µs)`, fixed(z.cpuUsPerMessage, 1), fixed(r.cpuUsPerMessage, 1), ratio(z.cpuUsPerMessage, r.cpuUsPerMessage)]);
    rows.push([`${name}: heartbeat CPU per second (ms/s; 10 = 1 % of a core)`, fixed(z.cpuMsPerSec, 1), fixed(r.cpuMsPerSec, 1), ratio(z.cpuMsPerSec, r.cpuMsPerSec)]);
  };
  windowRows('defaults (budget 2000/s)', zDefault.windows[0]!, raw.windows[0]!);
  if (zFast !== undefined && raw.windows[1] !== undefined) windowRows(`faster (budget ${FAST_BUDGET}/s)`, zFast.windows[0]!, raw.windows[1]);
  if (zFast !== undefined) rows.push([`RSS per stream, budget ${FAST_BUDGET}/s (KiB)`, kib(rssPerStream(zFast)), '', '']);

  const w0 = Math.max(...rows.map((r) => r[0].length));
  const line = (r: [string, string, string, string]): string => `| ${r[0].padEnd(w0)} | ${r[1].padStart(8)} | ${r[2].padStart(11)} | ${r[3].padStart(6)} |`;
  console.log(`\nIdle worker streams: ${STREAMS} streams over ${CHANNELS} connections from ${CLIENT_PROCESSES} client process(es); node ${process.version}, ${os.cpus().length} CPUs;`);
  console.log(`each server alone in its process; warm-up ${WARMUP_MS / 1000} s, window ${WINDOW_MS / 1000} s; baseline Pings paced by ${describePacing(RAW_PACING)}\n`);
  console.log(line(['figure', 'zonal', 'raw grpc-js', 'ratio']));
  console.log(`|${'-'.repeat(w0 + 2)}|${'-'.repeat(10)}|${'-'.repeat(13)}|${'-'.repeat(8)}|`);
  for (const r of rows) console.log(line(r));

  const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  console.log(`\nTargets (issue §9; one ${WINDOW_MS / 1000} s window per figure, so repeat the run to see the spread):`);
  const cpuChecks: [string, WindowFigures, WindowFigures | undefined][] = [['defaults', zDefault.windows[0]!, raw.windows[0]]];
  if (zFast !== undefined) cpuChecks.push([`budget ${FAST_BUDGET}/s`, zFast.windows[0]!, raw.windows[1]]);
  for (const [name, z, r] of cpuChecks) {
    if (r === undefined) continue;
    const x = z.cpuUsPerMessage / r.cpuUsPerMessage;
    console.log(`  CPU per heartbeat <= ${TARGET_CPU_RATIO}x raw grpc-js (${name}): ${fixed(x, 2)}x -> ${verdict(x <= TARGET_CPU_RATIO)}`);
  }
  const rss = rssPerStream(zDefault);
  console.log(`  RSS per stream <= ${TARGET_RSS_PER_STREAM_BYTES / 1024} KiB with default settings: ${kib(rss)} KiB (${Math.round(rss)} B) -> ${verdict(rss <= TARGET_RSS_PER_STREAM_BYTES)}`);

  console.log('\nDetails:');
  for (const run of [zDefault, ...(zFast !== undefined ? [zFast] : []), raw]) {
    console.log(
      `  ${run.label}: RSS ${(run.rssBeforeBytes / 1e6).toFixed(1)} -> ${(run.rssAfterBytes / 1e6).toFixed(1)} MB, JS heap per stream ${kib(heapPerStream(run))} KiB;` +
        ` streams opened in ${(run.openMs / 1000).toFixed(1)} s; CPU with no streams ${fixed(run.floorMsPerSec, 2)} ms/s; ${run.serverNote}`,
    );
    for (const w of run.windows) {
      console.log(
        `    window ${(w.wallMs / 1000).toFixed(1)} s: ${w.messages} Pings written, ${w.clientPings} received by the clients, ${w.keepaliveUpdates} KeepaliveUpdates;` +
          ` ${fixed(burstOf(w.schedule), 1)} Pings on ${fixed(connectionsPerBurst(w.schedule, STREAMS / CHANNELS), 1)} connections per millisecond with any; server CPU ${(w.cpuUs / 1000).toFixed(0)} ms; client CPU ${fixed(w.clientCpuUs / w.messages, 1)} µs per Ping`,
      );
    }
    if (run.otherMessages > 0) console.log(`    WARNING: the clients got ${run.otherMessages} messages other than Welcome, Ping and KeepaliveUpdate`);
    if (run.endedEarly > 0) console.log(`    WARNING: ${run.endedEarly} streams ended before the run closed them (first error: ${run.firstError}); the figures above are not of ${STREAMS} streams`);
  }
  for (const run of [zDefault, raw]) {
    const w = run.windows[0];
    const p = w?.profile;
    if (w === undefined || p === undefined) continue;
    const perMessage = (ms: number): string => `${((ms * 1000) / w.messages).toFixed(1).padStart(5)} µs/Ping`;
    console.log(`\nCPU profile of ${run.label}, first window (${p.file}): ${p.busyMs.toFixed(0)} ms of samples (the profiler inflates the CPU figures of this run)`);
    console.log('  by area (self time):');
    for (const a of p.byArea) console.log(`  ${a.pct.toFixed(1).padStart(5)} %  ${perMessage(a.ms)}  ${a.name}`);
    console.log('  hottest functions (self time):');
    for (const f of p.byFunction) console.log(`  ${f.pct.toFixed(1).padStart(5)} %  ${perMessage(f.ms)}  ${f.name}`);
    if (p.zonalInclusive.length > 0) console.log("  Zonal's functions (inclusive time, callees included):");
    for (const f of p.zonalInclusive) console.log(`  ${f.pct.toFixed(1).padStart(5)} %  ${perMessage(f.ms)}  ${f.name}`);
  }
}

async function main(): Promise<void> {
  if (STREAMS % CHANNELS !== 0 || CHANNELS % CLIENT_PROCESSES !== 0 || CLIENT_PROCESSES === 0) {
    throw new RangeError(`streams (${STREAMS}) must divide evenly over channels (${CHANNELS}), and channels over client processes (${CLIENT_PROCESSES})`);
  }
  const profile = PROFILE_DIR !== '';
  if (profile) mkdirSync(PROFILE_DIR, { recursive: true });
  const zDefault = await runZonal('zonal-defaults', undefined, profile);
  const zFast = FAST_BUDGET > 0 ? await runZonal(`zonal-budget-${FAST_BUDGET}`, FAST_BUDGET, false) : undefined;
  const raw = await runRaw([zDefault.windows[0]!, ...(zFast !== undefined ? [zFast.windows[0]!] : [])], profile);
  printReport(zDefault, zFast, raw);
}

/** Disconnects every child (each exits and cleans up), SIGKILLs the ones still there after 2 s, then exits. */
function abort(code: number): void {
  void Promise.all([...children].map((c) => c.close(2_000))).finally(() => process.exit(code));
}

const watchdog = setTimeout(() => {
  process.stderr.write(`[bench:idle] still running after ${WATCHDOG_MS / 1000} s: ending the children\n`);
  abort(1);
}, WATCHDOG_MS);
watchdog.unref();

process.once('SIGINT', () => abort(130));

main().then(
  () => clearTimeout(watchdog),
  (err: unknown) => {
    console.error(err);
    abort(1);
  },
);
