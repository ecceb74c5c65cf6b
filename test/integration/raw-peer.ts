/**
 * Small drivers over test/support/raw-client.ts for the raw-protocol and
 * bad-input integration tests: a worker peer that numbers nothing for you
 * (tests choose every sequence id), promise wrappers for the unary RPCs, and
 * a tracker that closes every stream, client and harness after a test.
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'vitest';
import { rawClient, RawStream } from '../support/raw-client';
import type { Harness } from '../support/server-harness';

// The raw client is built from the .proto at run time; its messages are plain objects.
/* eslint-disable @typescript-eslint/no-explicit-any */
export type Msg = Record<string, any>;
export type RawClient = ReturnType<typeof rawClient>;

export interface UpdateFields {
  taskId: string;
  attempt: number;
  status: string;
  /** A number, or a decimal string for values a JS number cannot hold. */
  version: number | string;
  progressPermille?: number;
  result?: Buffer;
  error?: { code: number; reason: string; message: string; retryable: boolean };
}

/** Closes everything a test opened, streams first, then clients, then the server. */
export class Resources {
  private readonly streams: RawStream[] = [];
  private readonly calls: { cancel(): void }[] = [];
  private readonly clients: grpc.Client[] = [];
  harness: Harness | undefined;

  client(target: string, opts: { exact64?: boolean } = {}): RawClient {
    const client = rawClient(target, opts);
    this.clients.push(client);
    return client;
  }

  stream(stream: RawStream): RawStream {
    this.streams.push(stream);
    return stream;
  }

  /** A plain grpc.Client (no service methods), for sending bytes the .proto would not produce. */
  genericClient(target: string): grpc.Client {
    const client = new grpc.Client(target, grpc.credentials.createInsecure());
    this.clients.push(client);
    return client;
  }

  call<T extends { cancel(): void }>(call: T): T {
    this.calls.push(call);
    return call;
  }

  async release(): Promise<void> {
    for (const stream of this.streams.splice(0)) stream.close();
    for (const call of this.calls.splice(0)) call.cancel();
    for (const client of this.clients.splice(0)) client.close();
    const harness = this.harness;
    this.harness = undefined;
    if (harness !== undefined) await harness.cleanup();
  }
}

/** One unary call; resolves with the response or rejects with the grpc ServiceError. */
export function unary<T = Msg>(client: RawClient, method: string, request: Msg): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = client[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    fn.call(client, request, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

/** The ServiceError of a unary call that must fail. */
export async function unaryError(client: RawClient, method: string, request: Msg): Promise<grpc.ServiceError> {
  try {
    const res = await unary(client, method, request);
    throw new Error(`${method} succeeded but was expected to fail: ${JSON.stringify(res)}`);
  } catch (err) {
    if ((err as grpc.ServiceError).code === undefined) throw err;
    return err as grpc.ServiceError;
  }
}

/** Asserts a gRPC status, that details mention `mentions`, and (when given) the zonal-reason trailer. */
export function expectStatus(err: { code?: number; details?: string; metadata?: grpc.Metadata } | undefined, code: grpc.status, mentions: string | RegExp, reason?: string): void {
  expect(err, 'expected an error status').toBeDefined();
  expect({ code: grpc.status[err!.code ?? -1], details: err!.details }).toMatchObject({ code: grpc.status[code] });
  if (typeof mentions === 'string') expect(err!.details).toContain(mentions);
  else expect(err!.details).toMatch(mentions);
  if (reason !== undefined) expect(err!.metadata?.get('zonal-reason')).toEqual([reason]);
}

export async function submit(client: RawClient, request: Msg): Promise<string> {
  const res = await unary<{ taskId: string; deduplicated: boolean }>(client, 'Submit', request);
  expect(res.taskId).not.toBe('');
  return res.taskId;
}

export function getTask(client: RawClient, taskId: string): Promise<Msg> {
  return unary(client, 'GetTask', { taskId });
}

/**
 * A worker speaking the Connect protocol through RawStream. Inbound messages
 * are taken in order; those skipped while looking for a kind are kept, so no
 * message is lost (RawStream.next(kind) would drop them).
 */
export class RawWorker {
  readonly skipped: Msg[] = [];
  welcome: Msg = {};
  private lastSeq = 0;

  constructor(readonly stream: RawStream) {}

  /** Opens a stream, sends Hello and waits for Welcome. */
  static async connect(res: Resources, client: RawClient, hello: Msg): Promise<RawWorker> {
    const worker = new RawWorker(res.stream(new RawStream(client)));
    worker.send({ hello });
    const welcome = await worker.next();
    expect(welcome['kind']).toBe('welcome');
    worker.welcome = welcome['welcome'];
    return worker;
  }

  send(message: Msg): void {
    this.stream.send(message);
  }

  /** The next inbound message, whatever its kind. */
  async next(timeoutMs = 5_000): Promise<Msg> {
    const held = this.skipped.shift();
    if (held !== undefined) return held;
    return this.stream.next(undefined, timeoutMs);
  }

  /** The payload of the next message of `kind`; other messages are kept for `next`. */
  async take(kind: string, timeoutMs = 5_000): Promise<Msg> {
    const i = this.skipped.findIndex((m) => m['kind'] === kind);
    if (i >= 0) return this.skipped.splice(i, 1)[0]![kind];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.stream.next(undefined, Math.max(1, deadline - Date.now()));
      if (m['kind'] === kind) return m[kind];
      this.skipped.push(m);
    }
  }

  /** Waits for one Assignments message and returns its single assignment. */
  async assignment(): Promise<Msg> {
    const assignments = (await this.take('assignments'))['assignments'] as Msg[];
    expect(assignments).toHaveLength(1);
    return assignments[0]!;
  }

  /** Sends one update with the given sequence id (default: one more than the highest sent) and returns its ack. */
  async update(fields: UpdateFields, sequenceId: number | string = this.lastSeq + 1): Promise<Msg> {
    if (typeof sequenceId === 'number') this.lastSeq = Math.max(this.lastSeq, sequenceId);
    this.send({ updates: { updates: [{ ...fields, sequenceId }] } });
    const acks = (await this.take('acks'))['acks'] as Msg[];
    expect(acks).toHaveLength(1);
    return acks[0]!;
  }

  /** Proves every message sent so far was handled: Ping is answered in stream order. */
  async roundTrip(nonce = Date.now()): Promise<void> {
    this.send({ ping: { nonce, sentUnixMs: Date.now() } });
    const pong = await this.take('pong');
    expect(pong['nonce']).toBe(nonce);
  }

  close(): void {
    this.stream.close();
  }
}

/** The status a RawStream ended with, once it ended. */
export async function endStatus(stream: RawStream, timeoutMs = 5_000): Promise<grpc.StatusObject & { metadata: grpc.Metadata }> {
  await stream.closed(timeoutMs);
  expect(stream.status, 'stream ended without a status').toBeDefined();
  return stream.status as grpc.StatusObject & { metadata: grpc.Metadata };
}
