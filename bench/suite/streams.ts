/**
 * `streams`: many idle worker streams on one dispatcher (10,000; 1,000 with
 * --quick): RSS per stream, CPU per heartbeat against a bare grpc-js server
 * sending the same Pings, and the time to connect them all.
 *
 * It replaced bench/idle-streams.ts (`npm run bench:idle` now runs this
 * scenario alone), keeping its default-settings run and its child processes:
 *   idle-dispatcher.js  a Zonal dispatcher, default options, alone in its process
 *   idle-raw-server.js  the baseline: same proto and Connect method, nothing else;
 *                       it replays the dispatcher's Pings as the clients recorded them
 *   idle-clients.js     raw grpc-js streams (no SDK): Hello, then a Pong per Ping
 * Why the baseline replays the dispatcher's schedule: on loopback most of a
 * Ping's cost is the write, flush and syscall of its connection, so CPU per
 * message depends mostly on how many Pings share a flush; pinging the same
 * streams in the same milliseconds makes the baseline pay for the same
 * flushes (a timer per stream at random phases makes it well over 1.5x
 * costlier; see idle-raw-server.ts for its pacings).
 *
 * Per server: RSS after a full GC before any stream and after all streams are
 * welcomed and warmed up -> RSS per stream; CPU (process.cpuUsage, in the
 * server) over a window divided by the Pings it wrote -> CPU per heartbeat.
 * Connect time: in the client process, from the first stream opened to the
 * last Welcome received (channelConcurrency channels opening at a time).
 */
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClientStats, OpenArgs } from '../idle-clients';
import type { DispatcherSample, DispatcherStarted } from '../idle-dispatcher';
import { BenchChild, type ProcessSample } from '../idle-ipc';
import type { Pacing, RawSample } from '../idle-raw-server';
import { mergeSchedules, replayPeriodMs, type SendSchedule } from '../idle-schedule';
import { benchFile, check, type Figure, type Scenario, type ScenarioReport, type SuiteOptions } from './report';

interface Shape {
  streams: number;
  channels: number;
  channelConcurrency: number;
  warmupMs: number;
  windowMs: number;
}

interface WindowFigures {
  wallMs: number;
  cpuUs: number;
  messages: number;
  clientPings: number;
  schedule: SendSchedule;
  perSec: number;
  cpuUsPerMessage: number;
  cpuMsPerSec: number;
}

interface RunFigures {
  label: string;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  heapBeforeBytes: number;
  heapAfterBytes: number;
  /** From the first stream opened to the last Welcome, in the client process. */
  connectMs: number;
  window: WindowFigures;
  endedEarly: number;
  firstError: string;
  otherMessages: number;
  serverNote: string;
}

const SERVER_EXEC_ARGV = ['--expose-gc'];
const log = (line: string): void => void process.stderr.write(`[suite:streams] ${line}\n`);

class Children {
  private readonly all = new Set<BenchChild>();
  constructor(private readonly options: SuiteOptions) {}

  spawn(name: string, file: string, execArgv: string[]): BenchChild {
    const child = BenchChild.fork(name, path.join(benchFile(this.options, file)), execArgv);
    this.all.add(child);
    return child;
  }

  async close(child: BenchChild): Promise<void> {
    await child.close();
    this.all.delete(child);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.all].map((c) => this.close(c)));
  }
}

async function openClients(children: Children, shape: Shape, target: string, label: string): Promise<{ clients: BenchChild[]; connectMs: number }> {
  const client = children.spawn(`${label}-clients`, 'idle-clients.js', []);
  const opened = await client.request<{ welcomed: number; openMs: number }>(
    'open',
    {
      target,
      channels: shape.channels,
      streamsPerChannel: shape.streams / shape.channels,
      channelConcurrency: shape.channelConcurrency,
      firstIndex: 0,
      timeoutMs: 120_000,
    } satisfies OpenArgs,
    130_000,
  );
  if (opened.welcomed !== shape.streams) throw new Error(`${label}: ${opened.welcomed} of ${shape.streams} streams welcomed`);
  return { clients: [client], connectMs: opened.openMs };
}

async function closeClients(children: Children, clients: BenchChild[]): Promise<void> {
  await Promise.all(clients.map((c) => c.request('close', {}, 10_000).catch(() => undefined)));
  await Promise.all(clients.map((c) => children.close(c)));
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

async function measureWindow<S extends ProcessSample>(server: BenchChild, clients: BenchChild[], sent: (s: S) => number, windowMs: number): Promise<WindowFigures> {
  await Promise.all(clients.map((c) => c.request('recordStart')));
  const [s0, c0] = await Promise.all([server.request<S>('sample', { gc: false }), clientTotals(clients)]);
  await sleep(windowMs);
  const [s1, c1] = await Promise.all([server.request<S>('sample', { gc: false }), clientTotals(clients)]);
  const recorded = await Promise.all(clients.map((c) => c.request<[number, number[]][]>('recordStop')));
  const wallMs = s1.atMs - s0.atMs;
  const cpuUs = s1.cpuUs - s0.cpuUs;
  const messages = sent(s1) - sent(s0);
  return {
    wallMs,
    cpuUs,
    messages,
    clientPings: c1.pings - c0.pings,
    schedule: mergeSchedules(recorded),
    perSec: messages / (wallMs / 1000),
    cpuUsPerMessage: messages > 0 ? cpuUs / messages : NaN,
    cpuMsPerSec: cpuUs / 1000 / (wallMs / 1000),
  };
}

/** RSS and heap after a full GC with no stream open. */
async function before<S extends ProcessSample>(server: BenchChild): Promise<S> {
  await sleep(1_000);
  return server.request<S>('sample', { gc: true });
}

async function runZonal(children: Children, shape: Shape): Promise<RunFigures> {
  const label = 'zonal-defaults';
  const server = children.spawn(label, 'idle-dispatcher.js', SERVER_EXEC_ARGV);
  let clients: BenchChild[] = [];
  try {
    const started = await server.request<DispatcherStarted>('start', {});
    const s0 = await before<DispatcherSample>(server);
    log(`${label}: dispatcher on ${started.address} (heartbeat budget ${started.heartbeatBudgetPerSec}/s); opening ${shape.streams} streams`);
    const opened = await openClients(children, shape, started.address, label);
    clients = opened.clients;
    log(`${label}: ${shape.streams} streams welcomed in ${(opened.connectMs / 1000).toFixed(2)} s; warm-up ${shape.warmupMs / 1000} s, window ${shape.windowMs / 1000} s`);
    await sleep(shape.warmupMs);
    const after = await server.request<DispatcherSample>('sample', { gc: true });
    const window = await measureWindow<DispatcherSample>(server, clients, (s) => s.heartbeatsSent, shape.windowMs);
    const end = await server.request<DispatcherSample>('sample', { gc: false });
    const c = await clientTotals(clients);
    return {
      label,
      rssBeforeBytes: s0.rssBytes,
      rssAfterBytes: after.rssBytes,
      heapBeforeBytes: s0.heapUsedBytes,
      heapAfterBytes: after.heapUsedBytes,
      connectMs: opened.connectMs,
      window,
      endedEarly: c.endedEarly,
      firstError: c.firstError,
      otherMessages: c.otherMessages,
      serverNote: `${end.sessions} sessions open at the end, ${end.sessionsClosed} closed, ${end.errorsReported} errors reported`,
    };
  } finally {
    await closeClients(children, clients);
    await server.request('stop', {}, 15_000).catch((err: unknown) => log(`${label}: stop failed: ${String(err)}`));
    await children.close(server);
  }
}

async function runRaw(children: Children, shape: Shape, zonal: WindowFigures): Promise<RunFigures> {
  const label = 'raw-grpc-js';
  const server = children.spawn(label, 'idle-raw-server.js', SERVER_EXEC_ARGV);
  let clients: BenchChild[] = [];
  try {
    const { address } = await server.request<{ address: string }>('start');
    const s0 = await before<RawSample>(server);
    log(`${label}: server on ${address}; opening ${shape.streams} streams`);
    const opened = await openClients(children, shape, address, label);
    clients = opened.clients;
    const pacing: Pacing = { kind: 'replay', schedule: zonal.schedule, periodMs: replayPeriodMs(zonal.schedule, zonal.perSec) };
    await server.request('rate', { perSec: zonal.perSec, pacing });
    log(`${label}: ${shape.streams} streams welcomed in ${(opened.connectMs / 1000).toFixed(2)} s; replaying ${Math.round(zonal.perSec)} Pings/s`);
    await sleep(shape.warmupMs);
    const after = await server.request<RawSample>('sample', { gc: true });
    const window = await measureWindow<RawSample>(server, clients, (s) => s.pingsSent, shape.windowMs);
    const end = await server.request<RawSample>('sample', { gc: false });
    const c = await clientTotals(clients);
    return {
      label,
      rssBeforeBytes: s0.rssBytes,
      rssAfterBytes: after.rssBytes,
      heapBeforeBytes: s0.heapUsedBytes,
      heapAfterBytes: after.heapUsedBytes,
      connectMs: opened.connectMs,
      window,
      endedEarly: c.endedEarly,
      firstError: c.firstError,
      otherMessages: c.otherMessages,
      serverNote: `${end.streams} streams open at the end, ${end.pongsReceived} Pongs received in all`,
    };
  } finally {
    await closeClients(children, clients);
    await server.request('stop', {}, 15_000).catch(() => undefined);
    await children.close(server);
  }
}

export const streams: Scenario = async (options): Promise<ScenarioReport> => {
  const shape: Shape = options.quick
    ? { streams: 1_000, channels: 10, channelConcurrency: 10, warmupMs: 2_000, windowMs: 4_000 }
    : { streams: 10_000, channels: 100, channelConcurrency: 10, warmupMs: 10_000, windowMs: 20_000 };
  const children = new Children(options);
  try {
    const zonal = await runZonal(children, shape);
    const raw = await runRaw(children, shape, zonal.window);
    const perStream = (r: RunFigures): number => (r.rssAfterBytes - r.rssBeforeBytes) / shape.streams;
    const heapPerStream = (r: RunFigures): number => (r.heapAfterBytes - r.heapBeforeBytes) / shape.streams;
    const rssKiB = perStream(zonal) / 1024;
    const cpuRatio = zonal.window.cpuUsPerMessage / raw.window.cpuUsPerMessage;
    const figures: Figure[] = [
      { name: `RSS per idle stream, default settings (${shape.streams} streams)`, value: rssKiB, unit: 'KiB', versus: { name: 'raw grpc-js', value: perStream(raw) / 1024 } },
      { name: 'JS heap per idle stream', value: heapPerStream(zonal) / 1024, unit: 'KiB', versus: { name: 'raw grpc-js', value: heapPerStream(raw) / 1024 } },
      { name: 'CPU per heartbeat (server, everything in the window)', value: zonal.window.cpuUsPerMessage, unit: 'µs', versus: { name: 'raw grpc-js, same Pings replayed', value: raw.window.cpuUsPerMessage } },
      { name: 'heartbeat CPU per second (10 = 1 % of a core)', value: zonal.window.cpuMsPerSec, unit: 'ms/s', versus: { name: 'raw grpc-js', value: raw.window.cpuMsPerSec } },
      { name: 'heartbeats per second', value: zonal.window.perSec, unit: '/s', versus: { name: 'raw grpc-js', value: raw.window.perSec } },
      { name: `time to connect all ${shape.streams} streams (first open to last Welcome)`, value: zonal.connectMs, unit: 'ms', versus: { name: 'raw grpc-js', value: raw.connectMs } },
      { name: 'streams welcomed per second while connecting', value: shape.streams / (zonal.connectMs / 1000), unit: 'streams/s', versus: { name: 'raw grpc-js', value: shape.streams / (raw.connectMs / 1000) } },
    ];
    const notes = [
      `${shape.streams} idle streams over ${shape.channels} connections (${shape.channelConcurrency} connections opening at a time) from one client process of raw grpc-js streams (bench/idle-clients.js); each server alone in its process (idle-dispatcher.js: default options, SQLite in a temp dir; idle-raw-server.js).`,
      `Warm-up ${shape.warmupMs / 1000} s, then one window of ${shape.windowMs / 1000} s per server; the baseline replays the Pings the dispatcher wrote in its window (same streams, same milliseconds), so both pay for the same flushes.`,
      `RSS: after a full GC with no stream, and after all streams are welcomed and warmed up. Zonal RSS ${(zonal.rssBeforeBytes / 1e6).toFixed(1)} -> ${(zonal.rssAfterBytes / 1e6).toFixed(1)} MB; raw ${(raw.rssBeforeBytes / 1e6).toFixed(1)} -> ${(raw.rssAfterBytes / 1e6).toFixed(1)} MB.`,
      `Window: Zonal wrote ${zonal.window.messages} Pings (${zonal.window.clientPings} received), ${(zonal.window.cpuUs / 1000).toFixed(0)} ms CPU; raw wrote ${raw.window.messages} (${raw.window.clientPings} received), ${(raw.window.cpuUs / 1000).toFixed(0)} ms CPU. ${zonal.serverNote}; raw: ${raw.serverNote}.`,
      'The dispatcher is the build under dist-bench/src (compiled with the bench), not options.cli.',
    ];
    if (options.quick) notes.push('--quick: 1,000 streams and short windows; the CPU ratio of so few Pings is noisy, run the full scenario for the issue figures.');
    for (const run of [zonal, raw]) {
      if (run.endedEarly > 0) notes.push(`WARNING ${run.label}: ${run.endedEarly} streams ended early (first error: ${run.firstError})`);
      if (run.otherMessages > 0) notes.push(`WARNING ${run.label}: the clients got ${run.otherMessages} messages other than Welcome, Ping and KeepaliveUpdate`);
    }
    return {
      scenario: 'streams',
      figures,
      targets: [check('4a', 'RSS per idle stream', rssKiB, '<=', 20, 'KiB'), check('4b', 'CPU per heartbeat vs raw grpc-js', cpuRatio, '<=', 1.5, 'x')],
      notes,
    };
  } finally {
    await children.closeAll();
  }
};
