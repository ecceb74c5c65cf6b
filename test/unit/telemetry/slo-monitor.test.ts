import { afterEach, describe, expect, it, vi } from 'vitest';
import { compileSloThresholds, type SloThresholds } from '../../../src/config/slo-thresholds';
import { LatencyMatrix, SLOT_MS, type Series } from '../../../src/telemetry/latency-matrix';
import { SloMonitor, type SloMonitorOptions, type SloNotice } from '../../../src/telemetry/slo-monitor';

const T = 1_700_000_000_000;
const WINDOW_MS = 300_000;
const URL = 'http://hooks.test/slo';

interface Call {
  url: string;
  body: string;
  timeoutMs: number;
}

/** A webhook that fails its first `failures` requests, then takes them. */
function fakeWebhook(failures = 0): { calls: Call[]; post: NonNullable<SloMonitorOptions['post']> } {
  const calls: Call[] = [];
  let left = failures;
  return {
    calls,
    post: async (url, body, timeoutMs) => {
      calls.push({ url, body, timeoutMs });
      if (left > 0) {
        left -= 1;
        throw new Error('webhook answered HTTP 503');
      }
    },
  };
}

class Setup {
  nowMs = T;
  thresholds: SloThresholds = compileSloThresholds({ defaultP99Ms: 100 });
  readonly matrix = new LatencyMatrix();
  readonly monitors: SloMonitor[] = [];

  monitor(overrides: Partial<SloMonitorOptions> = {}): SloMonitor {
    const m = new SloMonitor({
      matrix: this.matrix,
      thresholds: () => this.thresholds,
      nowMs: () => this.nowMs,
      dispatcher: { id: 'dispatcher-1', zone: 'zone-d' },
      minSamples: 5,
      ...overrides,
    });
    this.monitors.push(m);
    return m;
  }

  /** `n` dispatch samples of `ms` from `from` to `to`, now. */
  samples(from: string, to: string, ms: number, n = 10, series: Series = 'dispatch.producer'): void {
    for (let i = 0; i < n; i++) this.matrix.record(series, from, to, ms, this.nowMs);
  }

  /** Moves past the window, so the samples so far no longer count. */
  pastWindow(): void {
    this.nowMs += WINDOW_MS + 2 * SLOT_MS;
  }
}

let setups: Setup[] = [];
function setup(): Setup {
  const s = new Setup();
  setups.push(s);
  return s;
}

afterEach(() => {
  for (const s of setups) for (const m of s.monitors) m.stop();
  setups = [];
  vi.useRealTimers();
});

describe('SloMonitor.check', () => {
  it('returns the transitions it found and keeps them in `transitions`', () => {
    const s = setup();
    const monitor = s.monitor();
    s.samples('zone-a', 'zone-b', 200);
    s.samples('zone-a', 'zone-c', 5);
    const found = monitor.check();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ kind: 'breach', from: 'zone-a', to: 'zone-b', quantile: 'p99', thresholdMs: 100, count: 10 });
    expect(found[0]!.valueMs).toBeGreaterThan(150);
    expect(monitor.check()).toEqual([]); // still in breach: not reported again
    s.pastWindow();
    s.samples('zone-a', 'zone-b', 5);
    expect(monitor.check().map((t) => t.kind)).toEqual(['recovery']);
    expect(monitor.transitions.map((t) => `${t.kind} ${t.from}->${t.to}`)).toEqual(['breach zone-a->zone-b', 'recovery zone-a->zone-b']);
  });

  it('judges only the dispatch latency by producer zone', () => {
    const s = setup();
    const monitor = s.monitor();
    s.samples('zone-d', 'zone-b', 5_000, 10, 'dispatch.dispatcher');
    s.samples('zone-d', 'zone-b', 5_000, 10, 'rtt');
    expect(monitor.check()).toEqual([]);
    expect(monitor.view().pairsSeen).toEqual([]);
  });

  it('does not judge pairs with fewer than minSamples', () => {
    const s = setup();
    const monitor = s.monitor({ minSamples: 11 });
    s.samples('zone-a', 'zone-b', 200, 10);
    expect(monitor.check()).toEqual([]);
    s.samples('zone-a', 'zone-b', 200, 1);
    expect(monitor.check()).toHaveLength(1);
  });

  it('looks at windowMs of samples', () => {
    const s = setup();
    const monitor = s.monitor({ windowMs: 60_000 });
    s.samples('zone-a', 'zone-b', 200);
    s.nowMs += 60_000 + SLOT_MS;
    expect(monitor.check()).toEqual([]);
    expect(monitor.view().pairsSeen).toEqual([]);
  });

  it('reads the thresholds at every check (they change live)', () => {
    const s = setup();
    const monitor = s.monitor();
    s.samples('zone-a', 'zone-b', 200);
    s.thresholds = compileSloThresholds({ defaultP99Ms: 1_000 });
    expect(monitor.check()).toEqual([]);
    s.thresholds = compileSloThresholds({ defaultP99Ms: 1_000, pairs: { 'zone-a->zone-b': { p99Ms: 100 } } });
    expect(monitor.check().map((t) => [t.kind, t.thresholdMs])).toEqual([['breach', 100]]);
  });
});

describe('SloMonitor.view', () => {
  it('lists the pairs judged and the ones in breach with their quantile', () => {
    const s = setup();
    s.thresholds = compileSloThresholds({ defaultP99Ms: 100, pairs: { 'zone-a->zone-c': { p99Ms: 1_000, p95Ms: 20 } } });
    const monitor = s.monitor();
    expect(monitor.view()).toEqual({ state: expect.anything(), pairsSeen: [], breaching: [], webhookFailures: 0 });
    s.samples('zone-a', 'zone-b', 200);
    s.samples('zone-a', 'zone-c', 40);
    s.samples('zone-b', 'zone-b', 1);
    monitor.check();
    const view = monitor.view();
    expect(view.pairsSeen).toEqual([
      { from: 'zone-a', to: 'zone-b' },
      { from: 'zone-a', to: 'zone-c' },
      { from: 'zone-b', to: 'zone-b' },
    ]);
    expect(view.breaching).toEqual([
      { from: 'zone-a', to: 'zone-b', quantile: 'p99' },
      { from: 'zone-a', to: 'zone-c', quantile: 'p95' },
    ]);
    expect([...view.state.breaching].sort()).toEqual(['zone-a->zone-b|p99', 'zone-a->zone-c|p95']);
  });
});

describe('SloMonitor webhook', () => {
  it('posts one JSON notice per breach with the documented fields', async () => {
    const s = setup();
    const hook = fakeWebhook();
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, webhookTimeoutMs: 750 });
    s.samples('zone-a', 'zone-b', 200, 20);
    const [breach] = monitor.check();
    monitor.check(); // nothing new: nothing posted
    await monitor.settled();
    expect(hook.calls).toHaveLength(1);
    expect(hook.calls[0]!.url).toBe(URL);
    expect(hook.calls[0]!.timeoutMs).toBe(750);
    const notice = JSON.parse(hook.calls[0]!.body) as SloNotice;
    expect(notice).toEqual({
      event: 'slo_breach',
      fromZone: 'zone-a',
      toZone: 'zone-b',
      quantile: 'p99',
      valueMs: breach!.valueMs,
      thresholdMs: 100,
      samples: 20,
      windowMs: WINDOW_MS,
      dispatcherId: 'dispatcher-1',
      dispatcherZone: 'zone-d',
      atMs: T,
    });
    expect(Object.keys(notice).sort()).toEqual(['atMs', 'dispatcherId', 'dispatcherZone', 'event', 'fromZone', 'quantile', 'samples', 'thresholdMs', 'toZone', 'valueMs', 'windowMs']);
  });

  it('posts a recovery notice, in order after the breach', async () => {
    const s = setup();
    const hook = fakeWebhook();
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post });
    s.samples('zone-a', 'zone-b', 200);
    monitor.check();
    s.pastWindow();
    s.samples('zone-a', 'zone-b', 1);
    monitor.check();
    await monitor.settled();
    const notices = hook.calls.map((c) => JSON.parse(c.body) as SloNotice);
    expect(notices.map((n) => [n.event, n.atMs])).toEqual([
      ['slo_breach', T],
      ['slo_recovery', s.nowMs],
    ]);
    expect(notices[1]!.valueMs).toBeLessThanOrEqual(100);
    expect(monitor.webhookFailures).toBe(0);
  });

  it('uses a 2 s timeout per request by default', async () => {
    const s = setup();
    const hook = fakeWebhook();
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post });
    s.samples('zone-a', 'zone-b', 200);
    monitor.check();
    await monitor.settled();
    expect(hook.calls.map((c) => c.timeoutMs)).toEqual([2_000]);
  });

  it('sends nothing without a webhook URL (or with an empty one)', async () => {
    for (const webhookUrl of [undefined, '']) {
      const s = setup();
      const hook = fakeWebhook();
      const monitor = s.monitor({ ...(webhookUrl === undefined ? {} : { webhookUrl }), post: hook.post });
      s.samples('zone-a', 'zone-b', 200);
      expect(monitor.check()).toHaveLength(1);
      await monitor.settled();
      expect(hook.calls).toEqual([]);
      expect(monitor.webhookFailures).toBe(0);
    }
  });

  it('notifies: () => false sends nothing but still reports transitions and view()', async () => {
    const s = setup();
    const hook = fakeWebhook();
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, notifies: () => false });
    s.samples('zone-a', 'zone-b', 200);
    expect(monitor.check().map((t) => t.kind)).toEqual(['breach']);
    await monitor.settled();
    expect(hook.calls).toEqual([]);
    expect(monitor.webhookFailures).toBe(0);
    expect(monitor.view().breaching).toEqual([{ from: 'zone-a', to: 'zone-b', quantile: 'p99' }]);
    expect(monitor.transitions).toHaveLength(1);
  });

  it('asks notifies() at each notice (the notifying dispatcher can change)', async () => {
    const s = setup();
    const hook = fakeWebhook();
    let notifies = false;
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, notifies: () => notifies });
    s.samples('zone-a', 'zone-b', 200);
    monitor.check();
    notifies = true;
    s.pastWindow();
    s.samples('zone-a', 'zone-b', 1);
    monitor.check();
    await monitor.settled();
    expect(hook.calls.map((c) => (JSON.parse(c.body) as SloNotice).event)).toEqual(['slo_recovery']);
  });

  it('retries a failing webhook (webhookAttempts) after 250 ms, and a notice taken on retry is no failure', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = setup();
    const hook = fakeWebhook(1);
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, webhookAttempts: 2 });
    s.samples('zone-a', 'zone-b', 200);
    monitor.check();
    await vi.advanceTimersByTimeAsync(249);
    expect(hook.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    await monitor.settled();
    expect(hook.calls).toHaveLength(2);
    expect(hook.calls[1]!.body).toBe(hook.calls[0]!.body);
    expect(monitor.webhookFailures).toBe(0);
  });

  it('counts a notice in webhookFailures once every attempt failed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = setup();
    const hook = fakeWebhook(10);
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, webhookAttempts: 2 });
    s.samples('zone-a', 'zone-b', 200);
    monitor.check();
    await vi.advanceTimersByTimeAsync(250);
    await monitor.settled();
    expect(hook.calls).toHaveLength(2);
    expect(monitor.webhookFailures).toBe(1);
  });

  it('with one attempt per notice, a failure is counted at once (no backoff)', async () => {
    const s = setup();
    const hook = fakeWebhook(10);
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, webhookAttempts: 1 });
    s.samples('zone-a', 'zone-b', 200);
    monitor.check();
    await monitor.settled();
    expect(hook.calls).toHaveLength(1);
    expect(monitor.webhookFailures).toBe(1);
  });

  it('opens the breaker after 3 failed requests: later notices fail fast without calling post', async () => {
    const s = setup();
    const hook = fakeWebhook(100);
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, webhookAttempts: 1 });
    // Five pairs breach in one check: five notices, sent one at a time.
    for (const to of ['b', 'c', 'd', 'e', 'f']) s.samples('zone-a', `zone-${to}`, 200);
    expect(monitor.check()).toHaveLength(5);
    await monitor.settled();
    expect(hook.calls).toHaveLength(3);
    expect(monitor.webhookFailures).toBe(5);
    // A later notice fails fast too.
    s.pastWindow();
    for (const to of ['b', 'c', 'd', 'e', 'f']) s.samples('zone-a', `zone-${to}`, 1);
    expect(monitor.check()).toHaveLength(5);
    await monitor.settled();
    expect(hook.calls).toHaveLength(3);
    expect(monitor.webhookFailures).toBe(10);
  });

  it('stops retrying a notice once the breaker opened', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = setup();
    const hook = fakeWebhook(100);
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, webhookAttempts: 2 });
    s.samples('zone-a', 'zone-b', 200);
    s.samples('zone-a', 'zone-c', 200);
    s.samples('zone-a', 'zone-d', 200);
    expect(monitor.check()).toHaveLength(3);
    // Notice 1: requests 1 and 2 fail (a retry after 250 ms). Notice 2: request 3 fails and opens the breaker: no retry.
    await vi.advanceTimersByTimeAsync(250);
    await monitor.settled();
    expect(hook.calls).toHaveLength(3);
    expect(monitor.webhookFailures).toBe(3);
  });

  it('a webhook that works again is used again for the next notices while the breaker stays closed', async () => {
    const s = setup();
    const hook = fakeWebhook(1);
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, webhookAttempts: 1 });
    s.samples('zone-a', 'zone-b', 200);
    s.samples('zone-a', 'zone-c', 200);
    monitor.check();
    await monitor.settled();
    expect(hook.calls).toHaveLength(2);
    expect(monitor.webhookFailures).toBe(1);
  });

  it('stop() gives up a notice waiting for its retry', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = setup();
    const hook = fakeWebhook(100);
    const monitor = s.monitor({ webhookUrl: URL, post: hook.post, webhookAttempts: 3 });
    s.samples('zone-a', 'zone-b', 200);
    monitor.check();
    await vi.advanceTimersByTimeAsync(0);
    expect(hook.calls).toHaveLength(1);
    monitor.stop();
    await vi.advanceTimersByTimeAsync(250);
    await monitor.settled();
    expect(hook.calls).toHaveLength(1);
    expect(monitor.webhookFailures).toBe(1);
  });
});

describe('SloMonitor timer', () => {
  it('start() checks every intervalMs; stop() leaves no timer behind', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const s = setup();
    const monitor = s.monitor({ intervalMs: 5_000, webhookUrl: URL, post: fakeWebhook().post, notifies: () => false });
    monitor.start();
    monitor.start(); // idempotent
    s.samples('zone-a', 'zone-b', 200);
    vi.advanceTimersByTime(4_999);
    expect(monitor.transitions).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(monitor.transitions.map((t) => t.kind)).toEqual(['breach']);
    monitor.stop();
    expect(vi.getTimerCount()).toBe(0);
    s.pastWindow();
    s.samples('zone-a', 'zone-b', 1);
    vi.advanceTimersByTime(60_000);
    expect(monitor.transitions).toHaveLength(1);
  });

  it('defaults to a check every 10 s', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const s = setup();
    const monitor = s.monitor();
    s.samples('zone-a', 'zone-b', 200);
    monitor.start();
    vi.advanceTimersByTime(9_999);
    expect(monitor.transitions).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(monitor.transitions).toHaveLength(1);
    monitor.stop();
  });
});
