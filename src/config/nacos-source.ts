import { EventEmitter } from 'node:events';
import { createLogger, LogLimiter, RateLimitedLog } from '../log';
import type { ConfigSource } from './config-source';
import { NacosHttpClient } from './nacos-http-client';
import { describeNacosTarget, type NacosTarget } from './nacos-url';

const log = createLogger('config');

/** The part of the nacos package's DataClient we use; its own typings are mostly `any`. */
interface NacosDataClient {
  subscribe(info: { dataId: string; group: string }, listener: (content: string | null) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  close(): void;
}

/**
 * The nacos client keeps its own snapshot of every GET (not atomic, not
 * validated, written even for an empty answer) and falls back to it. We
 * keep our own validated last-good file instead (last-good-snapshot.ts), so
 * its snapshot store is this no-op.
 */
class NoSnapshot extends EventEmitter {
  async get(): Promise<null> {
    return null;
  }
  async save(): Promise<void> {}
  async delete(): Promise<void> {}
  async batchSave(): Promise<void> {}
}

type DataClientClass = new (options: Record<string, unknown>) => NacosDataClient;

let zonalDataClient: DataClientClass | undefined;

/**
 * The nacos package (and its dependencies, ~170 ms to load) is loaded on
 * first use, so a dispatcher without a nacos:// source never pays for it.
 */
function dataClientClass(): DataClientClass {
  if (zonalDataClient === undefined) {
    const { DataClient } = require('nacos') as { DataClient: DataClientClass };
    zonalDataClient = class ZonalDataClient extends DataClient {
      protected getSnapshot(): NoSnapshot {
        return new NoSnapshot();
      }
    };
  }
  return zonalDataClient;
}

/**
 * One document in Nacos, through the npm `nacos` package's DataClient over
 * Nacos's v1 HTTP API (Nacos 2.x, or 3.x with the legacy adapter).
 *
 * - DataClient directly, never NacosConfigClient: that one elects a leader
 *   process per host over 127.0.0.1:7777, shared across unrelated servers.
 * - Its HTTP goes through NacosHttpClient: backoff between failed attempts,
 *   and close() ends the long poll it would otherwise leave in flight.
 * - Every key is subscribed in `start`, before the first long poll is held,
 *   because keys added later wait for the held poll to return (~30 s).
 * - `start` returns at once; the document arrives when Nacos answers.
 */
export class NacosSource implements ConfigSource {
  readonly http: NacosHttpClient;
  private client: NacosDataClient | undefined;
  /** Every failed attempt is reported; one line per 10 s is enough, and one more says how many were left out. */
  private readonly errorLog = new RateLimitedLog(new LogLimiter(1, 10_000), (suppressed) =>
    log.warn('Nacos errors not logged in the last window', { source: this.description, suppressed }),
  );

  constructor(
    readonly target: NacosTarget,
    private readonly requestTimeoutMs = 5_000,
    http?: NacosHttpClient,
  ) {
    this.http = http ?? new NacosHttpClient((err, failures) => this.logError(err, failures));
  }

  get description(): string {
    return describeNacosTarget(this.target);
  }

  start(deliver: (text: string | null) => void): void {
    const t = this.target;
    const client = new (dataClientClass())({
      serverAddr: t.servers.join(','),
      namespace: t.namespace,
      requestTimeout: this.requestTimeoutMs,
      httpclient: this.http,
      ...(t.username === undefined ? {} : { username: t.username, password: t.password ?? '' }),
    });
    this.client = client;
    client.on('error', (err) => this.logError(err));
    client.subscribe({ dataId: t.dataId, group: t.group }, (content) => deliver(content));
  }

  async close(): Promise<void> {
    // Order matters: the client first marks itself closed, then the HTTP
    // layer ends the held poll with "nothing changed", and its loop exits.
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      // close() removes every listener of its workers, so a late error
      // event (from a request that failed just before) would be unhandled.
      const workers = [...((client as unknown as { clients?: Map<string, EventEmitter> }).clients?.values() ?? [])];
      client.close();
      for (const worker of workers) worker.on('error', () => {});
    }
    this.http.close();
    this.errorLog.close();
  }

  private logError(err: Error, consecutiveFailures?: number): void {
    this.errorLog.write(() =>
      log.warn('Nacos is unreachable or answered with an error; the config in force stays and polling goes on with backoff', {
        source: this.description,
        error: { name: err.name, message: err.message.slice(0, 300) },
        consecutiveFailures,
      }),
    );
  }
}
