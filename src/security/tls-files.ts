import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** PEM files of one side of a TLS connection. */
export interface TlsFiles {
  /** This side's certificate chain and its private key (both or neither). */
  certFile?: string;
  keyFile?: string;
  /** CA bundle that verifies the other side. */
  caFile?: string;
}

export interface TlsFileEvents {
  /** A rotated set was read and is in use (`notAfter` of the certificate, if any). */
  onReload?(info: { notAfter: string | undefined }): void;
  /** A rotated set could not be used; the last good one stays. */
  onError?(error: Error): void;
}

interface Loaded {
  ca: Buffer | undefined;
  cert: Buffer | undefined;
  key: Buffer | undefined;
  notAfter: string | undefined;
}

/** Reads the files and checks they make a working TLS context (the key matches the certificate, the PEM parses). */
function load(files: TlsFiles): Loaded {
  const read = (file: string | undefined, what: string): Buffer | undefined => {
    if (file === undefined || file === '') return undefined;
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read the TLS ${what} ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const cert = read(files.certFile, 'certificate');
  const key = read(files.keyFile, 'private key');
  const ca = read(files.caFile, 'CA bundle');
  if ((cert === undefined) !== (key === undefined)) throw new Error('give both the TLS certificate and its private key, or neither');
  if (cert !== undefined) checkCertificates(cert, files.certFile!, 'certificate');
  if (ca !== undefined) checkCertificates(ca, files.caFile!, 'CA bundle');
  try {
    tls.createSecureContext({ ...(cert !== undefined ? { cert, key } : {}), ...(ca !== undefined ? { ca } : {}) });
  } catch (err) {
    throw new Error(`the TLS files do not make a usable context (${[files.certFile, files.keyFile, files.caFile].filter(Boolean).join(', ')}): ${err instanceof Error ? err.message : String(err)}`);
  }
  const notAfter = cert !== undefined ? new X509Certificate(cert).validTo : undefined;
  return { ca, cert, key, notAfter };
}

/**
 * Throws unless `pem` holds at least one certificate and every PEM block in
 * it is complete and parses. Checked here because createSecureContext takes a
 * CA bundle that is empty, cut short or not PEM at all without a word, and
 * such a bundle then refuses every client certificate.
 */
function checkCertificates(pem: Buffer, file: string, what: string): void {
  const text = pem.toString('latin1');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`the TLS ${what} ${file} holds no PEM certificate (empty, cut short, or not PEM)`);
  // Each complete block has four runs of dashes; a block cut short anywhere in its markers, or another kind of block, shows as more.
  const dashRuns = (text.match(/-{3,}/g) ?? []).length;
  if (dashRuns !== blocks.length * 4 || (text.match(/-----BEGIN /g) ?? []).length !== blocks.length) {
    throw new Error(`the TLS ${what} ${file} has a PEM block that is cut short or not a CERTIFICATE`);
  }
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of the TLS ${what} ${file} does not parse: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
}

/**
 * A grpc-js CertificateProvider over PEM files that are replaced in place
 * (cert-manager, a mounted Secret): the files are polled and a changed set is
 * handed to grpc-js, which uses it for new connections without a restart.
 *
 * Written here rather than using grpc-js's FileWatcherCertificateProvider
 * because that one hands over whatever it read: a half-written file or a key
 * that does not match its certificate makes grpc-js drop every new
 * connection until the files are right again. This one checks a set first
 * (it must build a TLS context) and keeps the last good set otherwise, so a
 * bad rotation costs an error log, not an outage.
 *
 * The first read is synchronous and throws: a process does not start on
 * unusable files.
 */
export class TlsFileProvider implements CertificateProvider {
  private current: Loaded;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly watched: string[];
  private closed = false;

  constructor(
    private readonly files: TlsFiles,
    reloadIntervalMs: number,
    private readonly events: TlsFileEvents = {},
  ) {
    this.current = load(files);
    this.watched = [files.certFile, files.keyFile, files.caFile].filter((f): f is string => f !== undefined && f !== '');
    for (const file of this.watched) fs.watchFile(file, { interval: reloadIntervalMs, persistent: false }, this.onChange);
  }

  /** `notAfter` of the certificate in use. */
  get notAfter(): string | undefined {
    return this.current.notAfter;
  }

  get hasIdentity(): boolean {
    return this.current.cert !== undefined;
  }

  get hasCa(): boolean {
    return this.current.ca !== undefined;
  }

  /** Reads the files now (the poll does this when one changes). */
  reload(): boolean {
    if (this.closed) return false;
    let next: Loaded;
    try {
      next = load(this.files);
    } catch (err) {
      this.events.onError?.(err instanceof Error ? err : new Error(String(err)));
      return false;
    }
    const same = (a: Buffer | undefined, b: Buffer | undefined): boolean => (a === undefined ? b === undefined : b !== undefined && a.equals(b));
    if (same(next.ca, this.current.ca) && same(next.cert, this.current.cert) && same(next.key, this.current.key)) return false;
    this.current = next;
    for (const listener of this.caListeners) listener(this.caUpdate());
    for (const listener of this.identityListeners) listener(this.identityUpdate());
    this.events.onReload?.({ notAfter: next.notAfter });
    return true;
  }

  close(): void {
    this.closed = true;
    for (const file of this.watched) fs.unwatchFile(file, this.onChange);
  }

  // The first update of a new listener is delivered on the next microtask:
  // grpc-js adds its own watcher only after adding the listener, so an
  // update delivered inside the add would be lost (and the server would
  // drop every connection as "credentials not loaded").
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => this.caListeners.has(listener) && listener(this.caUpdate()));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => this.identityListeners.has(listener) && listener(this.identityUpdate()));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  private readonly onChange = (): void => {
    this.reload();
  };

  private caUpdate(): grpc.experimental.CaCertificateUpdate | null {
    return this.current.ca !== undefined ? { caCertificate: this.current.ca } : null;
  }

  private identityUpdate(): grpc.experimental.IdentityCertificateUpdate | null {
    const { cert, key } = this.current;
    return cert !== undefined && key !== undefined ? { certificate: cert, privateKey: key } : null;
  }
}

/** How a dispatcher's gRPC port treats client certificates. */
export type ClientCertMode = 'none' | 'optional' | 'require';

/**
 * Server credentials for the dispatcher's gRPC port: its certificate and
 * key, and with a client CA, mutual TLS. `require` refuses a handshake
 * without a certificate the CA signed; `optional` lets such a client in
 * without a certificate identity (it may still present a token).
 */
export function serverCredentials(provider: TlsFileProvider, clientCerts: ClientCertMode): grpc.ServerCredentials {
  if (!provider.hasIdentity) throw new Error('a TLS server needs its certificate and private key');
  if (clientCerts !== 'none' && !provider.hasCa) throw new Error('mutual TLS needs the CA bundle that signs client certificates');
  // grpc-js's implementation takes the identity provider first and the CA provider second (its .d.ts names them the other way round).
  return grpc.experimental.createCertificateProviderServerCredentials(provider, clientCerts === 'none' ? null : provider, clientCerts === 'require');
}

/**
 * The roots a client trusts without a CA file, as grpc-js's createSsl() does:
 * the file GRPC_DEFAULT_SSL_ROOTS_FILE_PATH names, else Node's bundled roots.
 * (NODE_EXTRA_CA_CERTS is not followed: grpc-js's own TLS connections were
 * seen to refuse a server its CA signed with it set. Give `caFile` instead.)
 */
function defaultRoots(): Buffer {
  const file = process.env['GRPC_DEFAULT_SSL_ROOTS_FILE_PATH'];
  if (file !== undefined && file !== '') return fs.readFileSync(file);
  return Buffer.from(tls.rootCertificates.join('\n'));
}

/** A CA provider that hands grpc-js fixed roots (its first update on the next microtask, as TlsFileProvider's). */
function fixedCaProvider(ca: Buffer): CertificateProvider {
  return {
    addCaCertificateListener: (listener: CaListener) => queueMicrotask(() => listener({ caCertificate: ca })),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: () => undefined,
    removeIdentityCertificateListener: () => undefined,
  };
}

/**
 * Channel credentials for a client: verify the server with the CA bundle (or
 * the default roots) and, with a certificate, present it (mTLS). A rotated
 * certificate, key or CA file is used for the next connection.
 */
export function channelCredentials(provider: TlsFileProvider | undefined): grpc.ChannelCredentials {
  if (provider === undefined || (!provider.hasCa && !provider.hasIdentity)) return grpc.credentials.createSsl();
  // Without a CA file grpc-js would take the certificate once (createSsl): the default roots go through a provider
  // of their own, so the certificate still comes from the watched files.
  const ca = provider.hasCa ? provider : fixedCaProvider(defaultRoots());
  return grpc.experimental.createCertificateProviderChannelCredentials(ca, provider.hasIdentity ? provider : null);
}
