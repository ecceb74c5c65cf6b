/**
 * Child process of `npm run bench:idle`: many idle worker streams from a raw
 * grpc-js client built from proto/zonal/v1/dispatcher.proto (no SDK Worker,
 * so the client stays light). Each stream sends Hello {workerId, slots: 1},
 * answers every Ping with a Pong echoing nonce and sentUnixMs, and sends
 * nothing else. Each channel has its own subchannel pool, so every channel
 * is its own TCP connection.
 */
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { dispatcherService } from '../src/protocol/service';
import type { WireDispatcherMessage, WirePing } from '../src/protocol/wire';
import { serveIpc, sampleProcess, type ProcessSample } from './idle-ipc';
import { workerIdOf } from './idle-schedule';

/** All these streams ever send (proto-loader fills in the rest). */
type Outbound = { hello: { workerId: string; slots: number } } | { pong: WirePing };
type Call = grpc.ClientDuplexStream<Outbound, WireDispatcherMessage>;
type ConnectClient = grpc.Client & { Connect(): Call };

export interface OpenArgs {
  target: string;
  channels: number;
  streamsPerChannel: number;
  /** Channels opening their streams at the same time. */
  channelConcurrency: number;
  /** Index of this process's first stream; stream i of channel c is firstIndex + c * streamsPerChannel + i. */
  firstIndex: number;
  timeoutMs: number;
}

export interface ClientStats extends ProcessSample {
  streams: number;
  welcomed: number;
  pings: number;
  keepaliveUpdates: number;
  otherMessages: number;
  /** Streams that ended (status received) before close() was asked. */
  endedEarly: number;
  firstError: string;
}

const clients: ConnectClient[] = [];
const calls: Call[] = [];
let welcomed = 0;
let pings = 0;
/** While recording: the streams that got a Ping, by sentUnixMs (the server's clock when it wrote them). */
let sentAt: Map<number, number[]> | undefined;
let keepaliveUpdates = 0;
let otherMessages = 0;
let ended = 0;
let endedEarly = 0;
let closing = false;
let firstError = '';
const endWaiters: (() => void)[] = [];

function openStream(client: ConnectClient, index: number): Promise<void> {
  return new Promise((resolve) => {
    const call = client.Connect();
    calls.push(call);
    call.on('data', (message: WireDispatcherMessage) => {
      switch (message.kind) {
        case 'ping':
          pings += 1;
          if (sentAt !== undefined) {
            const sentMs = Number(message.ping.sentUnixMs);
            const slot = sentAt.get(sentMs);
            if (slot === undefined) sentAt.set(sentMs, [index]);
            else slot.push(index);
          }
          call.write({ pong: { nonce: message.ping.nonce, sentUnixMs: message.ping.sentUnixMs } });
          return;
        case 'welcome':
          welcomed += 1;
          resolve();
          return;
        case 'keepalive':
          keepaliveUpdates += 1;
          return;
        default:
          otherMessages += 1;
      }
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (!closing && firstError === '') firstError = `${err.code} ${err.details}`;
    });
    call.on('status', () => {
      ended += 1;
      if (!closing) endedEarly += 1;
      resolve();
      if (ended === calls.length) for (const w of endWaiters.splice(0)) w();
    });
    call.write({ hello: { workerId: workerIdOf(index), slots: 1 } });
  });
}

async function open(args: OpenArgs): Promise<{ welcomed: number; openMs: number }> {
  const Client = dispatcherService().client;
  const t0 = performance.now();
  let nextChannel = 0;
  const opener = async (): Promise<void> => {
    for (let c = nextChannel++; c < args.channels; c = nextChannel++) {
      const client = new Client(args.target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as ConnectClient;
      clients.push(client);
      await Promise.all(Array.from({ length: args.streamsPerChannel }, (_, s) => openStream(client, args.firstIndex + c * args.streamsPerChannel + s)));
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`only ${welcomed} of ${args.channels * args.streamsPerChannel} streams welcomed within ${args.timeoutMs} ms`)), args.timeoutMs);
  });
  try {
    await Promise.race([Promise.all(Array.from({ length: args.channelConcurrency }, opener)), timeout]);
  } finally {
    clearTimeout(timer);
  }
  if (endedEarly > 0) throw new Error(`${endedEarly} streams ended while opening; first error: ${firstError}`);
  return { welcomed, openMs: performance.now() - t0 };
}

async function close(): Promise<{ ended: number }> {
  closing = true;
  const allEnded = new Promise<void>((resolve) => (ended === calls.length ? resolve() : endWaiters.push(resolve)));
  for (const call of calls) call.cancel();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([allEnded, new Promise<void>((resolve) => (timer = setTimeout(resolve, 5_000)))]);
  clearTimeout(timer);
  for (const client of clients) client.close();
  return { ended };
}

serveIpc({
  open,
  recordStart: (): void => {
    sentAt = new Map();
  },
  /** [sentUnixMs, stream indices] pairs, in time order: when, and on which streams, the server wrote its Pings. */
  recordStop: (): [number, number[]][] => {
    const entries = [...(sentAt ?? new Map<number, number[]>()).entries()].sort((a, b) => a[0] - b[0]);
    sentAt = undefined;
    return entries;
  },
  stats: (): ClientStats => ({
    ...sampleProcess(false),
    streams: calls.length,
    welcomed,
    pings,
    keepaliveUpdates,
    otherMessages,
    endedEarly,
    firstError,
  }),
  close,
});
