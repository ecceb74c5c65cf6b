import * as http from 'node:http';
import * as https from 'node:https';
import { backoffDelayMs, type BackoffPolicy } from '../core/backoff';
import { MAX_DOCUMENT_BYTES } from './document-text';

/**
 * The `httpclient` the nacos package's HttpAgent calls (urllib's
 * `request(url, options)` shape), written here because urllib cannot be
 * stopped from outside and the agent and client around it have hazards
 * (shared/notes/nacos.md):
 *
 * - HttpAgent retries a failed request in a loop with no pause: against a
 *   refused port that is tens of thousands of attempts a second. Here a
 *   request that fails (no connection, timeout, 5xx) is retried inside
 *   this client after an exponential backoff with jitter, until Nacos
 *   answers or the client is closed. The agent and the client's long-poll
 *   loop above never see the failure, so they never spin and never park in
 *   their own 2 s sleep (a timer that would outlive close()).
 * - The client's close() leaves its 30 s long poll in flight. `close()`
 *   here ends every request and backoff at once. They resolve with an
 *   empty 200, which the client reads as "nothing changed"; its loop then
 *   sees that it is closed and stops.
 *
 * - A long poll that comes back quickly (under QUICK_POLL_MS), whatever
 *   it says, is paced like a failure: the next poll waits
 *   NACOS_QUICK_POLL_BACKOFF (100 ms, doubling up to 2 s). A healthy Nacos
 *   holds the poll ~29.5 s unless the config changes, so only a burst of
 *   changes is slowed, and only by the wait before the next poll. A server
 *   or proxy that answers every poll at once, or whose MD5 never matches
 *   the client's (each answer then also costs a GET), would otherwise
 *   drive the client's loop at hundreds of requests a second.
 *
 * - An answer is read up to MAX_DOCUMENT_BYTES + 1 bytes, never more.
 *
 * Answers below 500 (403 for bad credentials, 404) go up unchanged; after a
 * 4xx other than 404 the next request still waits its backoff. Each
 * request uses its own connection (no keep-alive agent), so nothing stays
 * open between long polls or after close().
 */
export interface NacosHttpRequestOptions {
  method?: string;
  data?: Record<string, unknown>;
  headers?: Record<string, string>;
  timeout?: number;
  dataAsQueryString?: boolean;
}

export interface NacosHttpResponse {
  status: number;
  data: string;
  headers: Record<string, string | string[] | undefined>;
}

export const NACOS_RETRY_BACKOFF: BackoffPolicy = { initialMs: 100, multiplier: 2, maxMs: 5_000, jitter: 0.5 };

export const NACOS_QUICK_POLL_BACKOFF: BackoffPolicy = { initialMs: 100, multiplier: 2, maxMs: 2_000, jitter: 0.5 };

/** A long poll answered sooner than this counts as quick (a healthy one is held ~29.5 s). */
export const QUICK_POLL_MS = 1_000;

/** An answer is read up to one byte more than the largest document, so a larger one is refused, never held in memory. */
const MAX_ANSWER_BYTES = MAX_DOCUMENT_BYTES + 1;

const LISTENER_PATH = '/v1/cs/configs/listener';

const CLOSED_ANSWER: NacosHttpResponse = { status: 200, data: '', headers: {} };

export class NacosHttpClient {
  private closed = false;
  private failures = 0;
  /** Long polls in a row answered within QUICK_POLL_MS. */
  private quickPolls = 0;
  private readonly cancels = new Set<() => void>();
  /** Requests sent and failures seen, for tests and logs. */
  readonly stats = { requests: 0, failures: 0, backoffWaits: 0, pollPacingWaits: 0 };

  constructor(
    /** Told of every failed attempt (it is retried); the caller decides what to log. */
    private readonly onFailure: (error: Error, consecutiveFailures: number) => void = () => {},
    private readonly backoff: BackoffPolicy = NACOS_RETRY_BACKOFF,
    private readonly random: () => number = Math.random,
    private readonly pollPacing: { backoff: BackoffPolicy; quickMs: number; nowMs: () => number } = { backoff: NACOS_QUICK_POLL_BACKOFF, quickMs: QUICK_POLL_MS, nowMs: () => performance.now() },
  ) {}

  async request(url: string, options: NacosHttpRequestOptions = {}): Promise<NacosHttpResponse> {
    if (!new URL(url).pathname.endsWith(LISTENER_PATH)) return this.attempt(url, options);
    if (this.quickPolls > 0) {
      this.stats.pollPacingWaits += 1;
      await this.pause(backoffDelayMs(this.pollPacing.backoff, this.quickPolls, this.random));
    }
    const startedMs = this.pollPacing.nowMs();
    const response = await this.attempt(url, options);
    this.quickPolls = this.pollPacing.nowMs() - startedMs < this.pollPacing.quickMs ? this.quickPolls + 1 : 0;
    return response;
  }

  /** One request, retried after failures with backoff until answered or closed. */
  private async attempt(url: string, options: NacosHttpRequestOptions): Promise<NacosHttpResponse> {
    for (;;) {
      if (this.failures > 0) {
        this.stats.backoffWaits += 1;
        await this.pause(backoffDelayMs(this.backoff, this.failures, this.random));
      }
      if (this.closed) return CLOSED_ANSWER;
      this.stats.requests += 1;
      let failure: Error;
      try {
        const response = await this.send(url, options);
        if (this.closed) return CLOSED_ANSWER;
        if (response.status < 500) {
          // 200 and 404 (no such config) are answers; any other 4xx (403 bad
          // credentials, 409 conflict) goes up unchanged, but the agent would
          // repeat it at once in its loop, so the next request backs off.
          if (response.status === 200 || response.status === 404) this.failures = 0;
          else {
            this.failures += 1;
            this.stats.failures += 1;
            this.onFailure(new Error(`Nacos answered ${response.status}: ${response.data.slice(0, 200)}`), this.failures);
          }
          return response;
        }
        failure = new Error(`Nacos answered ${response.status}: ${response.data.slice(0, 200)}`);
      } catch (err) {
        if (this.closed) return CLOSED_ANSWER;
        failure = err as Error;
      }
      this.failures += 1;
      this.stats.failures += 1;
      this.onFailure(failure, this.failures);
    }
  }

  /** Ends every request and backoff in flight; later requests answer at once without the network. */
  close(): void {
    this.closed = true;
    for (const cancel of [...this.cancels]) cancel();
    this.cancels.clear();
  }

  get inFlight(): number {
    return this.cancels.size;
  }

  private pause(ms: number): Promise<void> {
    if (this.closed || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const cancel = (): void => {
        clearTimeout(timer);
        this.cancels.delete(cancel);
        resolve();
      };
      const timer = setTimeout(cancel, ms);
      this.cancels.add(cancel);
    });
  }

  private send(url: string, options: NacosHttpRequestOptions): Promise<NacosHttpResponse> {
    const method = (options.method ?? 'GET').toUpperCase();
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(options.data ?? {})) {
      if (value !== undefined && value !== null) params.append(key, String(value));
    }
    const inQuery = options.dataAsQueryString === true || method === 'GET' || method === 'DELETE' || method === 'HEAD';
    const target = new URL(url);
    if (inQuery) for (const [key, value] of params) target.searchParams.append(key, value);
    const body = inQuery ? undefined : Buffer.from(params.toString(), 'utf8');
    // The agent sets some headers to undefined (e.g. Spas-AccessKey without
    // Aliyun credentials); urllib skips those, node:http would throw.
    const headers: Record<string, string | number> = {};
    for (const [name, value] of Object.entries(options.headers ?? {})) if (value !== undefined && value !== null) headers[name] = value;
    if (body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded; charset=utf-8';
      headers['content-length'] = body.length;
    }
    const transport = target.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = transport.request(target, { method, headers, agent: false });
      const cancel = (): void => {
        this.cancels.delete(cancel);
        req.destroy();
        resolve(CLOSED_ANSWER);
      };
      this.cancels.add(cancel);
      const done = (): void => {
        this.cancels.delete(cancel);
      };
      req.setTimeout(options.timeout ?? 5_000, () => req.destroy(new Error(`Nacos request timed out after ${options.timeout ?? 5_000} ms: ${method} ${target.pathname}`)));
      req.on('error', (err) => {
        done();
        reject(err);
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          size += chunk.length;
          if (size <= MAX_ANSWER_BYTES) return;
          // Larger than any document the gate accepts: stop reading. The
          // first MAX_ANSWER_BYTES go up, and the gate refuses them by size.
          done();
          req.destroy();
          resolve({ status: res.statusCode ?? 0, data: Buffer.concat(chunks).subarray(0, MAX_ANSWER_BYTES).toString('utf8'), headers: res.headers });
        });
        res.on('error', (err) => {
          done();
          reject(err);
        });
        res.on('end', () => {
          done();
          resolve({ status: res.statusCode ?? 0, data: Buffer.concat(chunks).toString('utf8'), headers: res.headers });
        });
      });
      req.end(body);
    });
  }
}
