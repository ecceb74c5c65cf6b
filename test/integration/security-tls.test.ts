import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { ProducerClient } from '../../src/client/producer-client';
import { Worker, type WorkerOptions } from '../../src/client/worker';
import { compileServerOptions } from '../../src/app/server-options';
import { ZonalError } from '../../src/errors';
import { tokenDigest } from '../../src/security/access-policy';
import { channelCredentials, TlsFileProvider } from '../../src/security/tls-files';
import { RawStream } from '../support/raw-client';
import { eventually, startHarness, type Harness } from '../support/server-harness';
import { installServerCert, securedRawClient, servedCertificate, SPIFFE_POLICY_LINES, swapFile, swapFileFrom, testCerts, tlsCredentials, type SecuredRawClient } from '../support/certs';
import { endStatus, unary, unaryError } from './raw-peer';

/**
 * TLS and mutual TLS on a real dispatcher (127.0.0.1 port 0) with real
 * certificates: who can connect, which identity a client certificate
 * names, and certificate rotation without a restart.
 */

const certs = testCerts();
afterAll(() => certs.cleanup());

const OPEN_POLICY = 'anonymous: {produce: ["*"], work: ["*"]}\n';
const MTLS_POLICY = [...SPIFFE_POLICY_LINES, ''].join('\n');

const caOnly = { caFile: certs.ca };
const asClient = (who: { cert: string; key: string }) => ({ caFile: certs.ca, certFile: who.cert, keyFile: who.key });

/** The dispatcher's "TLS files changed but cannot be used" log lines from now on (the rest still reach stderr). */
function captureTlsErrors(): string[] {
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: never[]) => {
    const line = String(chunk);
    if (line.includes('TLS files changed but cannot be used')) errors.push(line);
    else write(chunk, ...rest);
    return true;
  }) as typeof process.stderr.write);
  return errors;
}

describe('TLS on the gRPC port', () => {
  let harness: Harness | undefined;
  let dir = '';
  const closers: (() => unknown)[] = [];

  afterEach(async () => {
    vi.restoreAllMocks();
    for (const close of closers.splice(0).reverse()) await close();
    await harness?.cleanup();
    harness = undefined;
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  /** A TLS dispatcher whose certificate files live in a temp dir the test may swap; polls them every 100 ms. */
  async function tlsServer(policy: string, mutual?: 'require' | 'optional', clientCaFile = certs.ca): Promise<{ target: string; files: { cert: string; key: string } }> {
    dir ||= mkdtempSync(path.join(tmpdir(), 'zonal-tls-'));
    const files = installServerCert(dir, certs.server);
    const policyFile = path.join(dir, 'policy.yaml');
    writeFileSync(policyFile, policy);
    harness = await startHarness({
      tlsCertFile: files.cert,
      tlsKeyFile: files.key,
      ...(mutual !== undefined ? { tlsClientCaFile: clientCaFile, tlsClientCerts: mutual } : {}),
      accessPolicyFile: policyFile,
      securityPollMs: 100,
    });
    return { target: harness.target, files };
  }

  function producer(target: string, tls: ProducerClientTls, extra: Partial<ConstructorParameters<typeof ProducerClient>[0]> = {}): ProducerClient {
    const p = new ProducerClient({ target, tls, ...extra });
    closers.push(() => p.close());
    return p;
  }

  async function worker(target: string, tls: ProducerClientTls, options: Partial<WorkerOptions> = {}): Promise<Worker> {
    const w = new Worker({ target, tls, handler: (task) => `done:${task.payload.toString()}`, slots: 2, ...options });
    closers.push(() => w.close({ graceMs: 200 }));
    await w.start({ deadlineMs: 10_000 });
    return w;
  }

  function raw(target: string, credentials: grpc.ChannelCredentials, token?: string): SecuredRawClient {
    const client = securedRawClient(target, { credentials, ...(token !== undefined ? { token } : {}) });
    closers.push(() => client.close());
    return client;
  }

  /** The error a call gets before any TLS session exists (handshake refused, or no TLS at all). */
  async function transportError(client: SecuredRawClient): Promise<grpc.ServiceError> {
    return unaryError(client, 'GetTask', { taskId: 'no-such-task' });
  }

  it('refuses to start with TLS and no access policy, or with half a certificate pair', () => {
    expect(() => compileServerOptions({ tlsCertFile: certs.server.cert, tlsKeyFile: certs.server.key })).toThrow(/no --access-policy is given/);
    expect(() => compileServerOptions({ tlsCertFile: certs.server.cert, accessPolicyFile: 'p.yaml' })).toThrow(/give both --tls-cert and --tls-key/);
    expect(() => compileServerOptions({ tlsClientCaFile: certs.ca, accessPolicyFile: 'p.yaml' })).toThrow(/--tls-client-ca \(mutual TLS\) needs --tls-cert/);
    expect(() => compileServerOptions({ securityPollMs: 50 })).toThrow(/securityPollMs must be a whole number 100\.\./);
  });

  it('plaintext and a wrong CA fail (UNAVAILABLE); a client with the CA submits, a TLS worker completes, the result comes back', async () => {
    const { target } = await tlsServer(OPEN_POLICY);

    const plain = await transportError(raw(target, grpc.credentials.createInsecure()));
    expect(grpc.status[plain.code]).toBe('UNAVAILABLE');
    const wrongCa = await transportError(raw(target, tlsCredentials(certs.otherCa)));
    expect(grpc.status[wrongCa.code]).toBe('UNAVAILABLE');
    // The SDK says the same, and does not retry a failed handshake forever.
    const sdkWrongCa = await producer(target, { caFile: certs.otherCa }, { call: { maxAttempts: 1, callTimeoutMs: 5_000 } }).submit({ payload: 'x' }).catch((e: unknown) => e);
    expect(sdkWrongCa).toBeInstanceOf(ZonalError);
    expect(sdkWrongCa).toMatchObject({ reason: 'UNAVAILABLE', code: grpc.status.UNAVAILABLE });

    await worker(target, caOnly);
    const p = producer(target, caOnly);
    const { taskId } = await p.submit({ payload: 'over-tls' });
    expect((await p.result(taskId, { timeoutMs: 10_000 })).toString()).toBe('done:over-tls');
    expect(await p.get(taskId)).toMatchObject({ state: 'COMPLETED' });
    // serverName: the name the certificate must carry when the target's host is not it.
    const byName = producer(target, { caFile: certs.ca, serverName: 'localhost' });
    expect((await byName.result((await byName.submit({ payload: 'named' })).taskId, { timeoutMs: 10_000 })).toString()).toBe('done:named');
    const wrongName = await producer(target, { caFile: certs.ca, serverName: 'not-this-server.example' }, { call: { maxAttempts: 1, callTimeoutMs: 5_000 } }).submit({ payload: 'x' }).catch((e: unknown) => e);
    expect(wrongName).toMatchObject({ reason: 'UNAVAILABLE', code: grpc.status.UNAVAILABLE });
    // The served certificate is the one configured, and verifies with the CA.
    expect(await servedCertificate(target, { ca: certs.ca })).toEqual({ serial: certs.server.serial, authorized: true });
  });

  it('mutual TLS (require): no client certificate or one of another CA is refused; a good one works and its SPIFFE ID picks the identity', async () => {
    const { target } = await tlsServer(MTLS_POLICY, 'require');

    expect(grpc.status[(await transportError(raw(target, tlsCredentials(certs.ca)))).code]).toBe('UNAVAILABLE');
    expect(grpc.status[(await transportError(raw(target, tlsCredentials(certs.ca, certs.foreign)))).code]).toBe('UNAVAILABLE');
    expect(grpc.status[(await transportError(raw(target, tlsCredentials(certs.ca, certs.impostor)))).code]).toBe('UNAVAILABLE');

    // worker-a may work "jobs"; producer-b may produce to "jobs".
    await worker(target, asClient(certs.workerA), { queues: ['jobs'] });
    const b = producer(target, asClient(certs.producerB));
    const { taskId } = await b.submit({ queue: 'jobs', payload: 'm' });
    expect((await b.result(taskId, { timeoutMs: 10_000 })).toString()).toBe('done:m');

    // producer-b's grants, not anyone else's: it may not produce elsewhere...
    const denied = await b.submit({ queue: 'other', payload: 'm' }).catch((e: unknown) => e);
    expect(denied).toMatchObject({ reason: 'PERMISSION_DENIED', code: grpc.status.PERMISSION_DENIED });
    expect((denied as Error).message).toContain('identity "producer-b" may not use queue "other"');
    // ...nor work at all, while worker-a's certificate may work "jobs" only.
    const bStream = new RawStream(raw(target, tlsCredentials(certs.ca, certs.producerB)));
    bStream.send({ hello: { workerId: 'b-as-worker', slots: 1, queues: ['jobs'] } });
    const bEnd = await endStatus(bStream);
    expect(grpc.status[bEnd.code]).toBe('PERMISSION_DENIED');
    expect(bEnd.details).toContain('identity "producer-b" may not work queue "jobs"');
    const aStream = new RawStream(raw(target, tlsCredentials(certs.ca, certs.workerA)));
    aStream.send({ hello: { workerId: 'a-elsewhere', slots: 1, queues: ['jobs', 'other'] } });
    const aEnd = await endStatus(aStream);
    expect(grpc.status[aEnd.code]).toBe('PERMISSION_DENIED');
    expect(aEnd.metadata.get('zonal-reason')).toEqual(['PERMISSION_DENIED']);
    expect(aEnd.details).toContain('identity "worker-a" may not work queue "other"');
    // worker-a may not read producer-b's task: it has no produce grant.
    const aReads = await unaryError(raw(target, tlsCredentials(certs.ca, certs.workerA)), 'GetTask', { taskId });
    expect(grpc.status[aReads.code]).toBe('PERMISSION_DENIED');
  });

  it('mutual TLS (optional): a client without a certificate is known by its token; an unverified certificate names nobody', async () => {
    const token = 'optional-mode-token-0123456789';
    const { target } = await tlsServer(`${MTLS_POLICY}  - name: token-producer\n    tokenSha256: ${tokenDigest(token)}\n    produce: [jobs]\n`, 'optional');
    const withToken = raw(target, tlsCredentials(certs.ca), token);
    const submitted = await unary<{ taskId: string }>(withToken, 'Submit', { queue: 'jobs', payload: Buffer.from('t') });
    expect(submitted.taskId).not.toBe('');
    const anonymous = await unaryError(raw(target, tlsCredentials(certs.ca)), 'GetTask', { taskId: submitted.taskId });
    expect(grpc.status[anonymous.code]).toBe('UNAUTHENTICATED');
    expect(anonymous.details).toContain('needs a bearer token');
    // A certificate another CA signed connects (optional) but gives no identity, even one claiming producer-b's SPIFFE ID.
    for (const unverified of [certs.foreign, certs.impostor]) {
      const err = await unaryError(raw(target, tlsCredentials(certs.ca, unverified)), 'Submit', { queue: 'jobs' });
      expect(grpc.status[err.code], unverified.cert).toBe('UNAUTHENTICATED');
    }
    // A good certificate still names its identity.
    const viaCert = await unary<{ taskId: string }>(raw(target, tlsCredentials(certs.ca, certs.producerB)), 'Submit', { queue: 'jobs' });
    expect(viaCert.taskId).not.toBe('');
  });

  it('rotates the server certificate without a restart: new connections see the new one, an open worker stream keeps working', async () => {
    const { target, files } = await tlsServer(OPEN_POLICY);
    let welcomes = 0;
    const w = await worker(target, caOnly, { onConnected: () => (welcomes += 1) });
    const sessionBefore = w.sessionId;
    const p = producer(target, caOnly);
    const first = await p.submit({ payload: 'before' });
    expect((await p.result(first.taskId, { timeoutMs: 10_000 })).toString()).toBe('done:before');
    expect((await servedCertificate(target, { ca: certs.ca })).serial).toBe(certs.server.serial);

    swapFileFrom(files.cert, certs.server2.cert);
    swapFileFrom(files.key, certs.server2.key);
    await eventually(async () => (await servedCertificate(target, { ca: certs.ca })).serial === certs.server2.serial, 10_000, 'a new connection to be served the rotated certificate');
    expect(await servedCertificate(target, { ca: certs.ca })).toEqual({ serial: certs.server2.serial, authorized: true });

    // The connections opened before the rotation still carry calls and tasks: nothing reconnected.
    const second = await p.submit({ payload: 'after' });
    expect((await p.result(second.taskId, { timeoutMs: 10_000 })).toString()).toBe('done:after');
    expect(welcomes).toBe(1);
    expect(w.sessionId).toBe(sessionBefore);
    // A new client verifies the new certificate with the same CA.
    const fresh = producer(target, caOnly);
    const third = await fresh.submit({ payload: 'fresh' });
    expect((await fresh.result(third.taskId, { timeoutMs: 10_000 })).toString()).toBe('done:fresh');
    expect(harness!.server.dispatcher.lifecycle).toBe('RUNNING');
  });

  /** Found by an outside review: without a CA file, the SDK read its client certificate once. */
  it('a client without a CA file (default roots) still presents its rotated certificate on its next connection', async () => {
    const { target } = await tlsServer(MTLS_POLICY, 'require');
    const roots = process.env['GRPC_DEFAULT_SSL_ROOTS_FILE_PATH'];
    process.env['GRPC_DEFAULT_SSL_ROOTS_FILE_PATH'] = certs.ca; // the test CA as the "system" roots
    closers.push(() => (roots === undefined ? delete process.env['GRPC_DEFAULT_SSL_ROOTS_FILE_PATH'] : (process.env['GRPC_DEFAULT_SSL_ROOTS_FILE_PATH'] = roots)));
    const own = { cert: path.join(dir, 'client.crt'), key: path.join(dir, 'client.key') };
    swapFileFrom(own.cert, certs.producerB.cert);
    swapFileFrom(own.key, certs.producerB.key);
    const provider = new TlsFileProvider({ certFile: own.cert, keyFile: own.key }, 60_000);
    closers.push(() => provider.close());
    const credentials = channelCredentials(provider);
    const submitWith = async (): Promise<grpc.ServiceError | undefined> => {
      const client = raw(target, credentials);
      try {
        await unary(client, 'Submit', { queue: 'jobs' });
        return undefined;
      } catch (err) {
        return err as grpc.ServiceError;
      } finally {
        client.close();
      }
    };
    expect(await submitWith()).toBeUndefined(); // producer-b may produce to jobs
    swapFileFrom(own.cert, certs.workerA.cert);
    swapFileFrom(own.key, certs.workerA.key);
    expect(provider.reload()).toBe(true);
    const refused = await submitWith(); // a new connection, as worker-a, who may not
    expect(refused?.metadata.get('zonal-reason')).toEqual(['PERMISSION_DENIED']);
    expect(refused?.details).toContain('identity "worker-a"');
  });

  /** Found by an outside review: createSecureContext took such a bundle, and every client certificate was then refused. */
  it('a client CA bundle that is empty, cut short or not PEM is refused at start, and on a rotation the last good one stays', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'zonal-tls-'));
    const caFile = path.join(dir, 'ca.crt');
    const caPem = readFileSync(certs.ca, 'utf8');
    const otherPem = readFileSync(certs.otherCa, 'utf8');
    const bad = { empty: '', garbage: 'garbage\n', cutShort: caPem.slice(0, 300), oldPlusCutNew: caPem + otherPem.slice(0, 300), oldPlusCutMarker: `${caPem}-----BEGIN CERTIF` };
    for (const [what, text] of Object.entries(bad)) {
      writeFileSync(caFile, text);
      expect(() => new TlsFileProvider({ caFile }, 60_000).close(), what).toThrow(/CA bundle/);
    }
    swapFile(caFile, caPem);
    const errors = captureTlsErrors();
    const { target } = await tlsServer(MTLS_POLICY, 'require', caFile);
    const viaCert = (payload: string) => producer(target, asClient(certs.producerB)).submit({ queue: 'jobs', payload });
    expect((await viaCert('before')).taskId).not.toBe('');
    for (const [what, text] of Object.entries(bad)) {
      const before = errors.length;
      swapFile(caFile, text);
      await eventually(() => errors.length > before, 10_000, `the ${what} CA bundle to be logged`);
      expect((await viaCert(what)).taskId, what).not.toBe('');
    }
    // The documented CA rotation's first step, done right, is taken.
    swapFile(caFile, caPem + otherPem);
    await eventually(async () => (await viaCert('both-cas')).taskId !== '', 10_000, 'the two-CA bundle');
    expect(errors).toHaveLength(Object.keys(bad).length);
  });

  it('a bad rotation (a key that does not match, a garbage certificate) is logged and the last good certificate keeps serving', async () => {
    const { target, files } = await tlsServer(OPEN_POLICY);
    const errors = captureTlsErrors();
    await worker(target, caOnly);
    const p = producer(target, caOnly);

    swapFileFrom(files.key, certs.strayKey);
    await eventually(() => errors.length >= 1, 10_000, 'the mismatched key to be logged');
    expect(errors[0]).toContain('"level":"error"');
    expect((await servedCertificate(target, { ca: certs.ca })).serial).toBe(certs.server.serial);
    const fresh = producer(target, caOnly);
    const a = await fresh.submit({ payload: 'still-up' });
    expect((await fresh.result(a.taskId, { timeoutMs: 10_000 })).toString()).toBe('done:still-up');

    swapFile(files.cert, '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n');
    await eventually(() => errors.length >= 2, 10_000, 'the garbage certificate to be logged');
    expect((await servedCertificate(target, { ca: certs.ca })).serial).toBe(certs.server.serial);
    const b = await producer(target, caOnly).submit({ payload: 'still-up-2' });
    expect((await p.result(b.taskId, { timeoutMs: 10_000 })).toString()).toBe('done:still-up-2');

    // Fixing the files is picked up like any rotation.
    swapFileFrom(files.key, certs.server2.key);
    swapFileFrom(files.cert, certs.server2.cert);
    await eventually(async () => (await servedCertificate(target, { ca: certs.ca })).serial === certs.server2.serial, 10_000, 'the fixed files to be served');
    const c = await producer(target, caOnly).submit({ payload: 'fixed' });
    expect((await p.result(c.taskId, { timeoutMs: 10_000 })).toString()).toBe('done:fixed');
  });
});

type ProducerClientTls = NonNullable<ConstructorParameters<typeof ProducerClient>[0]['tls']>;
