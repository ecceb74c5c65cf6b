import { Client, type ClientConfig } from 'pg';
import { createLogger } from '../../log';
import type { StoreEvent } from '../task-store';

const log = createLogger('postgres-store');

/**
 * The LISTEN side of the store's wake-ups: one dedicated connection (a
 * pooled one cannot hold a LISTEN), reconnected with backoff when it drops.
 * Each reconnect reports `resync`, since notifications sent while it was
 * down are lost.
 */
export class Notifications {
  private client: Client | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 0;
  private connecting: Promise<void> | undefined;

  private probeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: ClientConfig,
    private readonly channels: { ready: string; cancel: string },
    private readonly emit: (event: StoreEvent) => void,
    /** The connection is probed this often, and given up when a probe takes longer: a silent partition is noticed. */
    private readonly probeMs = 5_000,
    /** A dispatcher entered the store (this one too: the caller tells them apart). */
    private readonly onPeer: (owner: string) => void = () => undefined,
  ) {}

  /** Connects and listens; a failure is retried in the background (and reported as resync once it works). */
  start(): Promise<void> {
    this.connecting ??= this.connect(false).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(resync: boolean): Promise<void> {
    if (this.closed) return;
    const client = new Client(this.config);
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, undefined));
    client.on('notification', (message) => this.onNotification(message.channel, message.payload ?? ''));
    try {
      await client.connect();
      await client.query(`LISTEN ${this.channels.ready}; LISTEN ${this.channels.cancel}`);
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      this.scheduleRetry(err);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.retryDelayMs = 0;
    this.probe(client);
    if (resync) this.emit({ kind: 'resync' });
  }

  /** A LISTEN connection that stops answering (a blackholed network) says nothing: ask it, and give it up when it does not answer. */
  private probe(client: Client): void {
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      if (this.client !== client) return;
      const timeout = setTimeout(() => this.lost(client, new Error(`the wake-up connection did not answer within ${this.probeMs} ms`)), this.probeMs);
      client.query('SELECT 1').then(
        () => {
          clearTimeout(timeout);
          this.probe(client);
        },
        (err: unknown) => {
          clearTimeout(timeout);
          this.lost(client, err instanceof Error ? err : new Error(String(err)));
        },
      );
    }, this.probeMs);
    this.probeTimer.unref();
  }

  private lost(client: Client, err: Error | undefined): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners('end');
    void client.end().catch(() => undefined);
    this.scheduleRetry(err);
  }

  private scheduleRetry(err: unknown): void {
    if (this.closed || this.retryTimer !== undefined) return;
    this.retryDelayMs = Math.min(5_000, Math.max(100, this.retryDelayMs * 2));
    log.warn('the wake-up connection to PostgreSQL is down; reconnecting', { inMs: this.retryDelayMs, error: err });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect(true);
    }, this.retryDelayMs);
    this.retryTimer.unref();
  }

  private onNotification(channel: string, payload: string): void {
    try {
      const body = JSON.parse(payload) as Record<string, unknown>;
      if (channel === this.channels.ready && typeof body['hello'] === 'string') {
        this.onPeer(body['hello']);
        return;
      }
      if (channel === this.channels.ready) {
        const queues = Array.isArray(body['q']) ? (body['q'] as unknown[]).map(String) : [];
        this.emit(queues.length === 0 ? { kind: 'resync' } : { kind: 'ready', queues, atMs: Number(body['at'] ?? 0) });
      } else if (channel === this.channels.cancel) {
        this.emit({ kind: 'cancelled', owner: String(body['owner'] ?? ''), taskId: String(body['taskId'] ?? ''), attempt: Number(body['attempt'] ?? 0) });
      }
    } catch (err) {
      log.warn('ignored a notification that is not JSON', { channel, error: err });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
  }
}
