import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * TLS material for the security tests, made with the `openssl` CLI in a temp
 * dir: a CA, two server certificates from it (for rotation), client
 * certificates whose URI SANs are SPIFFE IDs, and client certificates
 * signed by a different CA (one of them claiming a known SPIFFE ID). EC P-256 keys: the whole set takes about 0.1 s.
 *
 * Also the clients those tests need that test/support/raw-client.ts does not
 * make: a raw Dispatcher client with channel credentials and a bearer token,
 * and a bare TLS handshake that reads the certificate a port serves.
 */

const OPENSSL = '/usr/bin/openssl';

export const SPIFFE = {
  workerA: 'spiffe://test.zonal/worker-a',
  producerB: 'spiffe://test.zonal/producer-b',
  stranger: 'spiffe://test.zonal/stranger',
} as const;

/** Access-policy lines for the test certificates: worker-a works `jobs`, producer-b produces to it (each by its SPIFFE ID). */
export const SPIFFE_POLICY_LINES: readonly string[] = [
  'identities:',
  '  - name: worker-a',
  `    spiffeId: ${SPIFFE.workerA}`,
  '    work: [jobs]',
  '  - name: producer-b',
  `    spiffeId: ${SPIFFE.producerB}`,
  '    produce: [jobs]',
];

/** A certificate and its key, as files. */
export interface CertFiles {
  cert: string;
  key: string;
  /** The certificate's serial, as node:tls reports it (upper-case hex). */
  serial: string;
}

export interface TestCerts {
  dir: string;
  ca: string;
  /** A CA that signed nothing the dispatcher trusts. */
  otherCa: string;
  /** SAN IP:127.0.0.1, DNS:localhost; serial 1001. */
  server: CertFiles;
  /** The same names from the same CA, serial 1002: the rotation target. */
  server2: CertFiles;
  /** A key that matches neither server certificate (a bad rotation). */
  strayKey: string;
  workerA: CertFiles;
  producerB: CertFiles;
  /** URI SAN spiffe://test.zonal/stranger, signed by `otherCa`. */
  foreign: CertFiles;
  /** Claims producer-b's SPIFFE ID, but `otherCa` signed it: it must never be taken for producer-b. */
  impostor: CertFiles;
  /** Removes the directory. */
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(dir: string, name: string): string {
  const file = path.join(dir, `${name}.key`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir);
  return file;
}

function makeCa(dir: string, name: string): { cert: string; key: string } {
  const key = newKey(dir, name);
  const cert = path.join(dir, `${name}.crt`);
  openssl(
    ['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  return { cert, key };
}

function makeLeaf(dir: string, name: string, ca: { cert: string; key: string }, serial: number, extensions: string[]): CertFiles {
  const key = newKey(dir, name);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', ...extensions].join('\n') + '\n');
  openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${serial.toString(16)}`, '-days', '2', '-extfile', ext, '-out', cert], dir);
  return { cert, key, serial: serial.toString(16).toUpperCase() };
}

let cached: TestCerts | undefined;

/**
 * The test file's certificates, made on first use (vitest gives each test
 * file its own module instance, so each file has its own set). Call
 * `cleanup()` in afterAll.
 */
export function testCerts(): TestCerts {
  if (cached !== undefined) return cached;
  const dir = mkdtempSync(path.join(tmpdir(), 'zonal-certs-'));
  const ca = makeCa(dir, 'ca');
  const other = makeCa(dir, 'other-ca');
  const serverExt = ['subjectAltName=IP:127.0.0.1,DNS:localhost', 'extendedKeyUsage=serverAuth'];
  const clientExt = (uri: string): string[] => [`subjectAltName=URI:${uri}`, 'extendedKeyUsage=clientAuth'];
  const certs: TestCerts = {
    dir,
    ca: ca.cert,
    otherCa: other.cert,
    server: makeLeaf(dir, 'server', ca, 0x1001, serverExt),
    server2: makeLeaf(dir, 'server2', ca, 0x1002, serverExt),
    strayKey: newKey(dir, 'stray'),
    workerA: makeLeaf(dir, 'worker-a', ca, 0x2001, clientExt(SPIFFE.workerA)),
    producerB: makeLeaf(dir, 'producer-b', ca, 0x2002, clientExt(SPIFFE.producerB)),
    foreign: makeLeaf(dir, 'foreign', other, 0x3001, clientExt(SPIFFE.stranger)),
    impostor: makeLeaf(dir, 'impostor', other, 0x3002, clientExt(SPIFFE.producerB)),
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
      cached = undefined;
    },
  };
  cached = certs;
  return certs;
}

/** Replaces `target` atomically (write a temp file beside it, then rename), as cert-manager and Secret volumes do. */
export function swapFile(target: string, contents: string | Buffer): void {
  const temp = `${target}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, contents);
  renameSync(temp, target);
}

/** Copies `source` over `target` atomically. */
export function swapFileFrom(target: string, source: string): void {
  swapFile(target, readFileSync(source));
}

/** Copies a certificate and its key to `dir` as `tls.crt` / `tls.key`, the files a server is then pointed at. */
export function installServerCert(dir: string, from: CertFiles): { cert: string; key: string } {
  const cert = path.join(dir, 'tls.crt');
  const key = path.join(dir, 'tls.key');
  swapFileFrom(cert, from.cert);
  swapFileFrom(key, from.key);
  return { cert, key };
}

function hostPort(target: string): { host: string; port: number } {
  const i = target.lastIndexOf(':');
  return { host: target.slice(0, i), port: Number(target.slice(i + 1)) };
}

/**
 * The serial of the certificate a NEW connection to `target` is served
 * (a TLS handshake offering ALPN h2, as a gRPC client does), and whether it
 * verified against `ca`. A client certificate is presented when given (mTLS
 * ports).
 */
export function servedCertificate(target: string, options: { ca: string; client?: CertFiles }): Promise<{ serial: string; authorized: boolean }> {
  const { host, port } = hostPort(target);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      ALPNProtocols: ['h2'],
      ca: readFileSync(options.ca),
      ...(options.client !== undefined ? { cert: readFileSync(options.client.cert), key: readFileSync(options.client.key) } : {}),
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no TLS handshake with ${target} within 5 s`));
    }, 5_000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const serial = socket.getPeerCertificate().serialNumber;
      const authorized = socket.authorized;
      socket.destroy();
      resolve({ serial, authorized });
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/** Channel credentials from PEM files: verify with `ca`, present `client` (mTLS) when given. */
export function tlsCredentials(ca: string, client?: CertFiles): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(readFileSync(ca), client !== undefined ? readFileSync(client.key) : null, client !== undefined ? readFileSync(client.cert) : null);
}

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
let dispatcherCtor: grpc.ServiceClientConstructor | undefined;

export type SecuredRawClient = grpc.Client & Record<string, Function>;

/**
 * A raw zonal.v1.Dispatcher client (built from the .proto, like
 * raw-client.ts) with chosen channel credentials (plaintext by default) and,
 * when given, "authorization: Bearer <token>" on every call and stream.
 * RawStream and the raw-peer helpers take it as they take rawClient's.
 */
export function securedRawClient(target: string, options: { credentials?: grpc.ChannelCredentials; token?: string } = {}): SecuredRawClient {
  if (dispatcherCtor === undefined) {
    const pkg = protoLoader.loadSync('zonal/v1/dispatcher.proto', { includeDirs: [PROTO_ROOT], keepCase: false, longs: Number, enums: String, bytes: Buffer, defaults: true, oneofs: true });
    dispatcherCtor = (grpc.loadPackageDefinition(pkg) as unknown as { zonal: { v1: { Dispatcher: grpc.ServiceClientConstructor } } }).zonal.v1.Dispatcher;
  }
  const token = options.token;
  const interceptor: grpc.Interceptor = (callOptions, nextCall) =>
    new grpc.InterceptingCall(nextCall(callOptions), {
      start(metadata, listener, next) {
        if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
  return new dispatcherCtor(target, options.credentials ?? grpc.credentials.createInsecure(), { interceptors: [interceptor] }) as SecuredRawClient;
}
