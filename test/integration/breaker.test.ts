import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { Status, ZonalError } from '../../src/errors';
import { toServiceError } from '../../src/protocol/grpc-errors';
import { dispatcherService, registryService } from '../../src/protocol/service';
import type { WireSubmitRequest } from '../../src/protocol/wire';
import { CIRCUIT_STATE_VALUE } from '../../src/telemetry/metric-names';
import { RegistrationClient } from '../../src/xds/registration-client';
import { eventually } from '../support/server-harness';

type Mode = 'unavailable' | 'invalid' | 'ok';

/**
 * A fake zonal.v1.Dispatcher on 127.0.0.1 port 0 whose unary methods answer
 * as `mode` says, counting every call that reaches it.
 */
async function startFlakyDispatcher(): Promise<{ server: grpc.Server; target: string; arrivals: () => number; setMode: (m: Mode) => void }> {
  let mode: Mode = 'ok';
  let arrivals = 0;
  const respond = <T>(callback: grpc.sendUnaryData<unknown>, answer: () => T): void => {
    arrivals += 1;
    if (mode === 'unavailable') callback({ code: Status.UNAVAILABLE, details: 'fake outage' });
    else if (mode === 'invalid') callback(toServiceError(new ZonalError('INVALID_ARGUMENT', 'queue: must not contain spaces')));
    else callback(null, answer());
  };
  const server = new grpc.Server();
  server.addService(dispatcherService().definition, {
    // An empty batch is ready()'s warm-up, not a submit: answered, not counted.
    SubmitBatch: (call: grpc.ServerUnaryCall<{ tasks: WireSubmitRequest[] }, unknown>, callback: grpc.sendUnaryData<unknown>) =>
      call.request.tasks.length === 0
        ? callback(null, { results: [], servedBy: 'test/fake' })
        : respond(callback, () => ({ results: call.request.tasks.map((t) => ({ taskId: `task-${t.idempotencyKey}` })), servedBy: 'test/fake' })),
    GetTask: (call: grpc.ServerUnaryCall<{ taskId: string }, unknown>, callback: grpc.sendUnaryData<unknown>) =>
      respond(callback, () => ({ taskId: call.request.taskId, state: 'PENDING' })),
    CancelTask: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
      respond(callback, () => ({ state: 'CANCELLED', cancelled: true })),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
  );
  return { server, target: `127.0.0.1:${port}`, arrivals: () => arrivals, setMode: (m) => (mode = m) };
}

const rejection = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => new Error('expected a rejection'), (e: unknown) => e);

describe('SDK circuit breaker against a real gRPC server', () => {
  const servers: grpc.Server[] = [];
  const producers: ProducerClient[] = [];

  afterEach(() => {
    for (const p of producers.splice(0)) p.close();
    for (const s of servers.splice(0)) s.forceShutdown();
  });

  it('opens under UNAVAILABLE, fails fast without reaching the server, half-opens to one probe and closes after recovery', async () => {
    const fake = await startFlakyDispatcher();
    servers.push(fake.server);
    const gauge: { labels: Record<string, string>; value: number }[] = [];
    const producer = new ProducerClient({
      target: fake.target,
      call: { callTimeoutMs: 5_000, maxAttempts: 3, backoff: { initialMs: 1, jitter: 0 } },
      breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 200 },
      metrics: { circuitState: { set: (labels, value) => gauge.push({ labels: { ...labels }, value }) } },
    });
    producers.push(producer);
    await producer.ready({ deadlineMs: 5_000 });
    fake.setMode('unavailable');

    // Three attempts of the first call: below the volume threshold, the breaker stays closed.
    await expect(producer.get('t1')).rejects.toMatchObject({ reason: 'UNAVAILABLE' });
    expect(fake.arrivals()).toBe(3);
    expect(producer.circuitState()).toBe('CLOSED');
    // The fourth failure opens it; the retry of that call fails fast and is not retried.
    await expect(producer.get('t2')).rejects.toMatchObject({ reason: 'CIRCUIT_OPEN', code: Status.UNAVAILABLE, retryable: false });
    expect(fake.arrivals()).toBe(4);
    expect(producer.circuitState()).toBe('OPEN');

    // While open, every unary call fails fast with a typed error naming the target, and none reaches the server.
    const errors = await Promise.all([
      rejection(producer.get('t3')),
      rejection(producer.cancel('t3')),
      rejection(producer.submit({ payload: 'x' })),
      rejection(producer.submit({ payload: 'y' })),
    ]);
    for (const error of errors) {
      expect(error).toBeInstanceOf(ZonalError);
      expect(error).toMatchObject({ reason: 'CIRCUIT_OPEN' });
      expect((error as Error).message).toContain(fake.target);
    }
    expect(fake.arrivals()).toBe(4);

    // After resetTimeoutMs it half-opens: of three concurrent calls, only one probe goes through.
    await eventually(() => producer.circuitState() === 'HALF_OPEN', 5_000, 'the breaker to half-open');
    const probeRound = await Promise.all([rejection(producer.get('p1')), rejection(producer.get('p2')), rejection(producer.get('p3'))]);
    expect(fake.arrivals()).toBe(5);
    // The failed probe opened it again, so even the probe's own retry failed fast.
    for (const error of probeRound) expect(error).toMatchObject({ reason: 'CIRCUIT_OPEN' });
    expect(producer.circuitState()).toBe('OPEN');

    // The server recovers; the next probe succeeds and closes the breaker.
    fake.setMode('ok');
    await eventually(() => producer.circuitState() === 'HALF_OPEN', 5_000, 'the breaker to half-open again');
    expect((await producer.get('t4')).taskId).toBe('t4');
    expect(fake.arrivals()).toBe(6);
    expect(producer.circuitState()).toBe('CLOSED');
    const submitted = await producer.submitMany([{ payload: 'a' }, { payload: 'b' }]);
    expect(submitted.map((s) => s.servedBy)).toEqual(['test/fake', 'test/fake']);
    expect(await producer.cancel('t4')).toEqual({ state: 'CANCELLED', cancelled: true });

    // The state was exported as zonal_client_circuit_state{target} at every change.
    expect(gauge.every((g) => g.labels['target'] === fake.target)).toBe(true);
    const { CLOSED, OPEN, HALF_OPEN } = CIRCUIT_STATE_VALUE;
    expect(gauge.map((g) => g.value)).toEqual([CLOSED, OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]);
  });

  it('INVALID_ARGUMENT answers never open it: the dispatcher is healthy', async () => {
    const fake = await startFlakyDispatcher();
    servers.push(fake.server);
    const producer = new ProducerClient({
      target: fake.target,
      call: { callTimeoutMs: 5_000, maxAttempts: 3 },
      breaker: { volumeThreshold: 2, errorThresholdPercentage: 10, resetTimeoutMs: 200 },
    });
    producers.push(producer);
    fake.setMode('invalid');
    for (let i = 0; i < 10; i++) {
      await expect(producer.get(`t${i}`)).rejects.toMatchObject({ reason: 'INVALID_ARGUMENT', message: 'queue: must not contain spaces' });
      await expect(producer.submit({ payload: `p${i}` })).rejects.toMatchObject({ reason: 'INVALID_ARGUMENT' });
    }
    // Not retried (not retryable) and all of them reached the server.
    expect(fake.arrivals()).toBe(20);
    expect(producer.circuitState()).toBe('CLOSED');
  });

  it("the dispatcher's heartbeats to the control plane go through the same seam: skipped while open, resumed after recovery", async () => {
    let mode: Mode = 'unavailable';
    const heartbeats: number[] = [];
    const server = new grpc.Server();
    servers.push(server);
    server.addService(registryService().definition, {
      Heartbeat: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        heartbeats.push(Date.now());
        if (mode === 'unavailable') callback({ code: Status.UNAVAILABLE, details: 'control plane down' });
        else callback(null, { healthyZones: ['a', 'b'], healthWindowMs: 1_000 });
      },
      Deregister: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => callback(null, {}),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
    );
    const zones: string[][] = [];
    const states: number[] = [];
    const registration = new RegistrationClient({
      controlPlane: `127.0.0.1:${port}`,
      endpointId: 'd1',
      address: '127.0.0.1:1',
      zone: 'a',
      region: 'r',
      intervalMs: 20,
      onHealthyZones: (z) => zones.push(z),
      breaker: { volumeThreshold: 3, resetTimeoutMs: 300 },
      circuitStateGauge: { set: (labels, value) => (expect(labels).toEqual({ dependency: 'control-plane' }), states.push(value)) },
    });
    try {
      registration.start();
      await eventually(() => registration.circuitState() === 'OPEN', 5_000, 'the control-plane breaker to open');
      const openSeenAt = Date.now();
      const beforeProbe = heartbeats.length;
      // While open, ticks every 20 ms send nothing; the next heartbeat is the probe after resetTimeoutMs.
      await eventually(() => heartbeats.length > beforeProbe, 5_000, 'the probe heartbeat');
      expect(heartbeats.length).toBe(beforeProbe + 1);
      expect(heartbeats.at(-1)! - openSeenAt).toBeGreaterThanOrEqual(250);
      mode = 'ok';
      await eventually(() => registration.circuitState() === 'CLOSED' && zones.length > 0, 5_000, 'heartbeats to succeed again');
      expect(zones.at(-1)).toEqual(['a', 'b']);
      expect(states[0]).toBe(CIRCUIT_STATE_VALUE.CLOSED);
      expect(states).toContain(CIRCUIT_STATE_VALUE.OPEN);
      expect(states.at(-1)).toBe(CIRCUIT_STATE_VALUE.CLOSED);
    } finally {
      await registration.stop();
    }
  });
});
