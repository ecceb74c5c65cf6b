/**
 * `baseline-grpc`: what grpc-js alone does on this machine, the yardstick of
 * Zonal's figures. Raw grpc-js on loopback (no Zonal code on either side),
 * the server in one process (fixtures/raw-grpc-server.js) and the client in
 * another (fixtures/raw-grpc-client.js), as users deploy:
 *  - unary SubmitBatch calls/s with 64 in flight, with the bytes of a Zonal
 *    submit (one task: ~100 B payload, idempotency key, queue; a deadline);
 *  - unary p50 round trip, one call at a time;
 *  - bidi stream messages/s on one stream (the server echoes), written as
 *    fast as the stream takes them, and with a window of 64 in flight.
 * `rawUnary` runs one unary shape alone, so another scenario can set Zonal's
 * submits beside raw grpc-js measured in the same run.
 */
import { startChild, type Child } from '../deployed/children';
import type { RawClientSettings, RawJob } from './fixtures/raw-grpc-client';
import { benchFile, type Figure, type Scenario, type ScenarioReport, type SuiteOptions } from './report';

export interface RawUnaryShape {
  calls: number;
  inFlight: number;
  /** Payload of the one task per call; 100 B by default. */
  payloadBytes?: number;
  /** Unmeasured calls first (JIT, connection); a tenth of `calls` by default, at least 3,000. */
  warmupCalls?: number;
}

async function startRawServer(options: SuiteOptions): Promise<{ server: Child; target: string }> {
  const server = startChild('raw-grpc-server', process.execPath, [benchFile(options, 'suite/fixtures/raw-grpc-server.js')]);
  const listening = await server.next('listening', 30_000);
  return { server, target: String(listening['grpcAddress']) };
}

/** Runs `jobs` in a client process against a fresh raw server process; one result per job. */
async function runJobs(options: SuiteOptions, jobs: RawJob[]): Promise<Record<string, unknown>[]> {
  const { server, target } = await startRawServer(options);
  try {
    const client = startChild('raw-grpc-client', process.execPath, [benchFile(options, 'suite/fixtures/raw-grpc-client.js'), JSON.stringify({ target, jobs } satisfies RawClientSettings)]);
    const results: Record<string, unknown>[] = [];
    for (let i = 0; i < jobs.length; i++) results.push(await client.next('result', 120_000));
    await client.next('done', 10_000).catch(() => undefined);
    await client.stop();
    return results;
  } finally {
    await server.stop();
  }
}

/** Raw grpc-js unary calls of one Zonal submit each, at `shape`: calls/s and the p50 round trip. */
export async function rawUnary(options: SuiteOptions, shape: RawUnaryShape): Promise<{ callsPerSec: number; p50Ms: number }> {
  const [r] = await runJobs(options, [
    {
      kind: 'unary',
      label: 'unary',
      calls: shape.calls,
      inFlight: shape.inFlight,
      warmupCalls: shape.warmupCalls ?? Math.max(3_000, Math.ceil(shape.calls / 10)),
      payloadBytes: shape.payloadBytes ?? 100,
    },
  ]);
  return { callsPerSec: Number(r!['callsPerSec']), p50Ms: Number(r!['p50Ms']) };
}

export const baselineGrpc: Scenario = async (options): Promise<ScenarioReport> => {
  const q = options.quick;
  const payloadBytes = 100;
  const unaryCalls = q ? 5_000 : 40_000;
  const serialCalls = q ? 1_000 : 5_000;
  const streamMessages = q ? 20_000 : 200_000;
  const jobs: RawJob[] = [
    // grpc-js and protobufjs need a few thousand calls before their hot paths are optimized: a tenth is not enough in the quick shape.
    { kind: 'unary', label: 'unary-64', calls: unaryCalls, inFlight: 64, warmupCalls: q ? 3_000 : 5_000, payloadBytes },
    { kind: 'unary', label: 'unary-1', calls: serialCalls, inFlight: 1, warmupCalls: serialCalls / 10, payloadBytes },
    { kind: 'stream', label: 'stream-all', messages: streamMessages, window: 0, warmupMessages: streamMessages / 10, payloadBytes },
    { kind: 'stream', label: 'stream-64', messages: streamMessages, window: 64, warmupMessages: streamMessages / 10, payloadBytes },
  ];
  const results = await runJobs(options, jobs);
  const by = (label: string): Record<string, unknown> => results.find((r) => r['label'] === label)!;
  const u64 = by('unary-64');
  const u1 = by('unary-1');
  const all = by('stream-all');
  const w64 = by('stream-64');
  const figures: Figure[] = [
    { name: 'raw grpc-js unary SubmitBatch calls/s, 64 in flight (one 100 B task per call)', value: Number(u64['callsPerSec']), unit: 'calls/s' },
    { name: 'raw grpc-js unary p50 round trip, 64 in flight', value: Number(u64['p50Ms']), unit: 'ms' },
    { name: 'raw grpc-js unary p50 round trip, one call at a time', value: Number(u1['p50Ms']), unit: 'ms' },
    { name: 'raw grpc-js unary p99 round trip, one call at a time', value: Number(u1['p99Ms']), unit: 'ms' },
    { name: 'raw grpc-js client CPU per unary call, 64 in flight', value: Number(u64['clientCpuUsPerCall']), unit: 'µs' },
    { name: `raw grpc-js bidi stream echoed messages/s, one stream, ${payloadBytes} B, written as fast as it takes them`, value: Number(all['messagesPerSec']), unit: 'messages/s' },
    { name: `raw grpc-js bidi stream echoed messages/s, one stream, ${payloadBytes} B, 64 in flight`, value: Number(w64['messagesPerSec']), unit: 'messages/s' },
  ];
  return {
    scenario: 'baseline-grpc',
    figures,
    targets: [],
    notes: [
      'Raw grpc-js on loopback, no Zonal code: server and client each in its own process (fixtures/raw-grpc-server.js, fixtures/raw-grpc-client.js).',
      "Unary calls are zonal.v1.Dispatcher/SubmitBatch with the dispatcher's proto-loader (de)serializers: one task of 100 B with an idempotency key and a queue, a 10 s deadline per call, as ProducerClient sends one submit; the server answers a task id and servedBy.",
      `Shapes: ${unaryCalls} calls with 64 in flight, ${serialCalls} calls one at a time, ${streamMessages} stream messages per mode; each after unmeasured ones (3,000 quick / 5,000 unary calls with 64 in flight, a tenth otherwise). Stream messages are raw bytes echoed by the server.`,
      `node ${process.version}; one run per figure (this machine varies by about ±15 % run to run).`,
    ],
  };
};
