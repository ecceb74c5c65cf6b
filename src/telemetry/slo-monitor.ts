import type { SloThresholds } from '../config/slo-thresholds';
import { createLogger } from '../log';
import { Breaker, compileBreakerOptions } from '../resilience/breaker';
import type { LatencyMatrix } from './latency-matrix';
import { evaluateSlo, NO_BREACHES, type SloQuantile, type SloState, type SloTransition } from './slo-evaluator';

const log = createLogger('slo');
const MAX_PAIRS_SEEN = 33 * 33;

export interface SloMonitorOptions {
  matrix: LatencyMatrix;
  /** The objectives in force (the live config's `slo`). */
  thresholds: () => SloThresholds;
  nowMs: () => number;
  /** Who reports (in log lines and webhook bodies). */
  dispatcher: { id: string; zone: string };
  /** How often the check runs. Default 10 s. */
  intervalMs?: number;
  /** The window each check looks at. Default 5 min. */
  windowMs?: number;
  /** Fewest samples in the window for a pair to be judged. Default 20. */
  minSamples?: number;
  /** POSTed a JSON notice at each breach and recovery, if set. */
  webhookUrl?: string;
  /** Per webhook request. Default 2 s. */
  webhookTimeoutMs?: number;
  /** Tries per notice (1 + retries), with backoff 250 ms × 4^n. Default 3. */
  webhookAttempts?: number;
  /**
   * Whether this dispatcher sends the webhook notices. Dispatchers sharing
   * their latency rows all judge the same merged view; one of them (the
   * first by name among the live ones) notifies. Default: always.
   */
  notifies?: () => boolean;
  /** Seam for tests: how a notice is sent. Default: fetch. */
  post?: (url: string, body: string, timeoutMs: number) => Promise<void>;
}

/** What a webhook receives, one JSON object per breach or recovery. */
export interface SloNotice {
  event: 'slo_breach' | 'slo_recovery';
  fromZone: string;
  toZone: string;
  quantile: SloQuantile;
  valueMs: number;
  thresholdMs: number;
  samples: number;
  windowMs: number;
  dispatcherId: string;
  dispatcherZone: string;
  atMs: number;
}

function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '';
  }
}

async function fetchPost(url: string, body: string, timeoutMs: number): Promise<void> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(timeoutMs) });
  // Drain the body so the connection is reused; its content is not used.
  await response.arrayBuffer().catch(() => undefined);
  if (!response.ok) throw new Error(`webhook answered HTTP ${response.status}`);
}

/**
 * Runs the built-in SLO check (slo-evaluator.ts) on a timer over the
 * dispatch latency by producer zone -> worker zone. A breach or a recovery
 * is a structured log line, a change of zonal_slo_breach, and, with a
 * webhook, a POST behind a circuit breaker with retries: a dead webhook
 * costs one fast failure per notice once the breaker opens, and never
 * delays the check.
 */
export class SloMonitor {
  private state: SloState = NO_BREACHES;
  private timer: NodeJS.Timeout | undefined;
  private readonly breaker: Breaker | undefined;
  private readonly post: (url: string, body: string, timeoutMs: number) => Promise<void>;
  /** Every pair judged or seen since the start (bounded by the zone labels: at most 33 x 33). */
  private readonly seen = new Map<string, { from: string; to: string }>();
  private sending: Promise<void> = Promise.resolve();
  private stopped = false;
  webhookFailures = 0;
  /** The webhook URL as logs show it: no query (it may hold a token). */
  private readonly safeUrl: string;
  readonly transitions: SloTransition[] = [];

  constructor(private readonly options: SloMonitorOptions) {
    this.post = options.post ?? fetchPost;
    this.safeUrl = safeUrl(options.webhookUrl ?? '');
    // Every failure of the webhook counts (not only gRPC statuses).
    this.breaker = options.webhookUrl !== undefined && options.webhookUrl !== '' ? new Breaker('slo-webhook', compileBreakerOptions({ volumeThreshold: 3, resetTimeoutMs: 30_000 }), { countsAsFailure: () => true }) : undefined;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.check(), this.options.intervalMs ?? 10_000);
    this.timer.unref();
  }

  /** Stops the check; a notice still being retried is given up (the breaker refuses it). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.breaker?.close();
  }

  /** Resolves once the notices queued so far were delivered or given up (for tests). */
  settled(): Promise<void> {
    return this.sending;
  }

  /** Pairs judged so far and the ones in breach (for metrics and the page). */
  view(): { state: SloState; pairsSeen: { from: string; to: string }[]; breaching: { from: string; to: string; quantile: SloQuantile }[]; webhookFailures: number } {
    const breaching = [...this.state.breaching].map((key) => {
      const [pair = '', quantile = 'p99'] = key.split('|');
      const [from = '', to = ''] = pair.split('->');
      return { from, to, quantile: quantile as SloQuantile };
    });
    return { state: this.state, pairsSeen: [...this.seen.values()], breaching, webhookFailures: this.webhookFailures };
  }

  /** One evaluation (the timer calls it; tests call it directly). Returns the transitions it found. */
  check(): SloTransition[] {
    const o = this.options;
    const windowMs = o.windowMs ?? 300_000;
    const now = o.nowMs();
    o.matrix.prune(now);
    const pairs = o.matrix.summary('dispatch.producer', windowMs, 0.99, now);
    for (const p of pairs) if (this.seen.size < MAX_PAIRS_SEEN) this.seen.set(`${p.from}->${p.to}`, { from: p.from, to: p.to });
    const { state, transitions } = evaluateSlo(pairs, o.thresholds(), this.state, o.minSamples ?? 20);
    this.state = state;
    for (const t of transitions) {
      this.transitions.push(t);
      if (this.transitions.length > 100) this.transitions.shift();
      const fields = { fromZone: t.from, toZone: t.to, quantile: t.quantile, valueMs: Math.round(t.valueMs * 100) / 100, thresholdMs: t.thresholdMs, samples: t.count, windowMs };
      if (t.kind === 'breach') log.warn('SLO breach: dispatch latency between these zones is over its objective', fields);
      else if (t.thresholdMs === 0) log.info('SLO objective removed: the breach of it ends', fields);
      else log.info('SLO recovered: dispatch latency between these zones is back within its objective', fields);
      this.notify({ event: t.kind === 'breach' ? 'slo_breach' : 'slo_recovery', fromZone: t.from, toZone: t.to, quantile: t.quantile, valueMs: t.valueMs, thresholdMs: t.thresholdMs, samples: t.count, windowMs, dispatcherId: o.dispatcher.id, dispatcherZone: o.dispatcher.zone, atMs: now });
    }
    return transitions;
  }

  /** Notices go out one at a time, in order. */
  private notify(notice: SloNotice): void {
    const url = this.options.webhookUrl;
    const breaker = this.breaker;
    if (url === undefined || breaker === undefined || !(this.options.notifies?.() ?? true)) return;
    const body = JSON.stringify(notice);
    this.sending = this.sending.then(() => this.deliver(url, breaker, body));
  }

  private async deliver(url: string, breaker: Breaker, body: string): Promise<void> {
    const attempts = this.options.webhookAttempts ?? 3;
    const timeoutMs = this.options.webhookTimeoutMs ?? 2_000;
    for (let attempt = 1; ; attempt++) {
      try {
        await breaker.fire(() => this.post(url, body, timeoutMs));
        return;
      } catch (err) {
        const open = breaker.state() === 'OPEN';
        if (open || attempt >= attempts || this.stopped) {
          this.webhookFailures += 1;
          log.warn('SLO webhook did not take a notice', { url: this.safeUrl, attempts: attempt, breaker: breaker.state(), error: err instanceof Error ? err.message.replaceAll(url, this.safeUrl) : String(err) });
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 250 * 4 ** (attempt - 1)).unref());
      }
    }
  }
}
