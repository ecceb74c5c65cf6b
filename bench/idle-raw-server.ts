/**
 * Child process of `npm run bench:idle`: the baseline. A bare grpc-js server
 * with the same Connect method and the same proto-loader (de)serializers as
 * the dispatcher, and nothing else: it answers Hello with a Welcome and
 * writes Pings as the parent asks (see Pacing). Pongs are only counted.
 */
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { dispatcherService } from '../src/protocol/service';
import type { Outgoing, WireDispatcherMessage, WireWorkerMessage } from '../src/protocol/wire';
import { serveIpc, sampleProcess, type ProcessSample } from './idle-ipc';
import { profilingHandlers } from './idle-profile';
import { streamIndexOf, type SendSchedule } from './idle-schedule';

type Call = grpc.ServerDuplexStream<WireWorkerMessage, Outgoing<WireDispatcherMessage>>;

export interface RawSample extends ProcessSample {
  pingsSent: number;
  pongsReceived: number;
  streams: number;
}

/**
 * How the Pings are spread over time and streams:
 * - replay: exactly what the dispatcher did, as its clients recorded it:
 *   the same streams (so the same connections) in the same milliseconds,
 *   looped every periodMs;
 * - random-phase: a timer per stream every streams/perSec seconds, phases
 *   spread at random (the smoothest spread: fewest Pings per write);
 * - tick: one timer every tickMs walks the streams round-robin in Hello
 *   order (neighbouring streams share a connection: most Pings per write).
 */
export type Pacing = { kind: 'replay'; schedule: SendSchedule; periodMs: number } | { kind: 'random-phase' } | { kind: 'tick'; tickMs: number };

interface Stream {
  call: Call;
  open: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** Streams in Hello order, and by the index in their worker id. */
const streams: Stream[] = [];
const byIndex = new Map<number, Stream>();
let openStreams = 0;
let pingsSent = 0;
let pongsReceived = 0;
let nonce = 0;
let server: grpc.Server | undefined;
let pacer: NodeJS.Timeout | undefined;
let immediate: NodeJS.Immediate | undefined;

function connect(call: Call): void {
  let stream: Stream | undefined;
  const gone = (): void => {
    if (stream === undefined || !stream.open) return;
    stream.open = false;
    openStreams -= 1;
    if (stream.timer !== undefined) clearInterval(stream.timer);
    stream.timer = undefined;
  };
  call.on('data', (message: WireWorkerMessage) => {
    if (message.kind === 'pong') {
      pongsReceived += 1;
    } else if (message.kind === 'hello' && stream === undefined) {
      stream = { call, open: true, timer: undefined };
      streams.push(stream);
      byIndex.set(streamIndexOf(message.hello.workerId), stream);
      openStreams += 1;
      call.write({
        kind: 'welcome',
        welcome: { sessionId: `raw-${streams.length}`, heartbeatIntervalMs: 0, idleTimeoutMs: 0, drainGraceMs: 0, dispatcherId: 'raw', dispatcherZone: '' },
      });
    }
  });
  call.on('end', () => {
    gone();
    call.end();
  });
  call.on('cancelled', gone);
  call.on('error', gone);
}

function ping(stream: Stream | undefined, sentUnixMs: number): void {
  if (stream === undefined || !stream.open) return;
  stream.call.write({ kind: 'ping', ping: { nonce: ++nonce, sentUnixMs } });
  pingsSent += 1;
}

function stopPinging(): void {
  if (pacer !== undefined) clearTimeout(pacer);
  if (immediate !== undefined) clearImmediate(immediate);
  pacer = undefined;
  immediate = undefined;
  for (const stream of streams) {
    if (stream.timer !== undefined) clearInterval(stream.timer);
    stream.timer = undefined;
  }
}

/**
 * One timer, re-armed for the next recorded millisecond. One recorded
 * millisecond per event-loop turn, even when late (the next one then follows
 * on setImmediate): the dispatcher too writes each tick's Pings in a turn of
 * their own, so merging late slots would batch more than it did.
 */
function replay(schedule: SendSchedule, periodMs: number): void {
  let startMs = Date.now();
  let i = 0;
  const fire = (): void => {
    pacer = undefined;
    immediate = undefined;
    const now = Date.now();
    const [offsetMs, indices] = schedule[i]!;
    if (startMs + offsetMs <= now) {
      for (const index of indices) ping(byIndex.get(index), now);
      if (++i === schedule.length) {
        i = 0;
        startMs += periodMs;
      }
    }
    const waitMs = startMs + schedule[i]![0] - now;
    if (waitMs <= 0) immediate = setImmediate(fire);
    else pacer = setTimeout(fire, waitMs);
  };
  pacer = setTimeout(fire, 0);
}

function randomPhase(perSec: number): void {
  // Whole milliseconds: Node keeps one timer list per distinct duration.
  const intervalMs = Math.max(1, Math.round((openStreams * 1000) / perSec));
  for (const stream of streams) {
    if (!stream.open) continue;
    stream.timer = setTimeout(
      () => {
        ping(stream, Date.now());
        stream.timer = setInterval(() => ping(stream, Date.now()), intervalMs);
      },
      Math.floor(Math.random() * intervalMs),
    );
  }
}

function tick(perSec: number, tickMs: number): void {
  let cursor = 0;
  let due = 0;
  let lastMs = performance.now();
  pacer = setInterval(() => {
    const now = performance.now();
    due += (perSec * (now - lastMs)) / 1000;
    lastMs = now;
    if (openStreams === 0) {
      due = 0;
      return;
    }
    const sentUnixMs = Date.now();
    for (; due >= 1; due -= 1) {
      let stream = streams[cursor++ % streams.length]!;
      while (!stream.open) stream = streams[cursor++ % streams.length]!;
      ping(stream, sentUnixMs);
    }
  }, tickMs);
}

function startPinging(perSec: number, pacing: Pacing): void {
  stopPinging();
  if (pacing.kind === 'replay') {
    if (pacing.schedule.length > 0) replay(pacing.schedule, pacing.periodMs);
  } else if (perSec > 0 && pacing.kind === 'random-phase') {
    randomPhase(perSec);
  } else if (perSec > 0 && pacing.kind === 'tick') {
    tick(perSec, pacing.tickMs);
  }
}

serveIpc({
  ...profilingHandlers(),
  start: async (): Promise<{ address: string }> => {
    server = new grpc.Server();
    server.addService(dispatcherService().definition, { Connect: connect } as grpc.UntypedServiceImplementation);
    const port = await new Promise<number>((resolve, reject) =>
      server!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    return { address: `127.0.0.1:${port}` };
  },
  rate: (args: { perSec: number; pacing: Pacing }): void => startPinging(args.perSec, args.pacing),
  sample: (args: { gc: boolean }): RawSample => ({ ...sampleProcess(args.gc), pingsSent, pongsReceived, streams: openStreams }),
  stop: async (): Promise<void> => {
    stopPinging();
    const s = server;
    server = undefined;
    if (s === undefined) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        s.forceShutdown();
        resolve();
      }, 2_000);
      s.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  },
});
