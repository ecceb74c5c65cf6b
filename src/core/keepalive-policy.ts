/**
 * How often an idle worker stream gets an explicit heartbeat, and when a
 * silent one is dead. Pure: the RTT estimate and the session count are inputs.
 *
 *   base     = clamp(2*SRTT + 4*RTTVAR, minIntervalMs, maxIntervalMs)   (seed 002 §3.1)
 *   budget   = sessions * 1000 / heartbeatBudgetPerSec   (intervals stretch to stay in budget)
 *   cap      = min(lbIdleWindowMs * 0.8 - 250, deadPeerDetectMs / 3, maxIntervalMs)
 *              (250 ms of slack for timer lateness and the RTT, so the silence
 *              measured on the wire stays under 80 % of the LB window)
 *   interval = min(max(base, budget), cap)      -- the caps always win over the budget
 *   idle     = max(3 * interval, baseIdleMs)
 *
 * The margin comes from RTTVAR, so a jittery link gets a longer interval
 * (and idle timeout) instead of being declared dead too early.
 */
export interface KeepalivePolicyOptions {
  minIntervalMs: number;
  maxIntervalMs: number;
  /** Shortest idle window of any load balancer or proxy on the path (ALB 60 s, NLB 350 s, a 30 s health check). */
  lbIdleWindowMs: number;
  /** The operator's target for noticing a dead peer. */
  deadPeerDetectMs: number;
  /** Explicit heartbeats the dispatcher may send per second, over all sessions. */
  heartbeatBudgetPerSec: number;
  baseIdleMs: number;
}

export const KEEPALIVE_DEFAULTS: KeepalivePolicyOptions = {
  minIntervalMs: 500,
  maxIntervalMs: 15_000,
  lbIdleWindowMs: 60_000,
  deadPeerDetectMs: 45_000,
  heartbeatBudgetPerSec: 2_000,
  baseIdleMs: 5_000,
};

/** The fraction of the LB idle window a heartbeat interval may use. */
export const LB_WINDOW_SHARE = 0.8;
/** Taken off the LB cap for timer lateness and the RTT. */
export const LB_SLACK_MS = 250;

export interface KeepaliveDecision {
  intervalMs: number;
  idleTimeoutMs: number;
  /** Which force set the interval. */
  limitedBy: 'rtt' | 'budget' | 'lb-window' | 'dead-peer' | 'max';
  /** True when the budget wanted a longer interval than the caps allow: the caps won. */
  overBudget: boolean;
}

export function keepaliveCapMs(o: KeepalivePolicyOptions): { capMs: number; limitedBy: KeepaliveDecision['limitedBy'] } {
  const lbCap = o.lbIdleWindowMs * LB_WINDOW_SHARE - LB_SLACK_MS;
  const deadCap = o.deadPeerDetectMs / 3;
  const capMs = Math.min(lbCap, deadCap, o.maxIntervalMs);
  return { capMs, limitedBy: capMs === lbCap ? 'lb-window' : capMs === deadCap ? 'dead-peer' : 'max' };
}

export function decideKeepalive(o: KeepalivePolicyOptions, rtt: { srttMs: number; rttvarMs: number; samples: number }, sessions: number): KeepaliveDecision {
  const raw = rtt.samples === 0 ? o.minIntervalMs : 2 * rtt.srttMs + 4 * rtt.rttvarMs;
  const baseMs = Math.min(o.maxIntervalMs, Math.max(o.minIntervalMs, raw));
  const budgetMs = (Math.max(1, sessions) * 1000) / o.heartbeatBudgetPerSec;
  const { capMs, limitedBy: capBy } = keepaliveCapMs(o);
  const wantedMs = Math.max(baseMs, budgetMs);
  const intervalMs = Math.round(Math.min(wantedMs, capMs));
  const limitedBy = wantedMs >= capMs ? capBy : budgetMs > baseMs ? 'budget' : 'rtt';
  return { intervalMs, idleTimeoutMs: Math.max(3 * intervalMs, o.baseIdleMs), limitedBy, overBudget: budgetMs > capMs };
}

/** The worker is told again when its interval moved by more than this share since it was last told. */
export const REANNOUNCE_SHARE = 0.2;

export function shouldReannounce(announcedMs: number, nextMs: number): boolean {
  return announcedMs <= 0 || Math.abs(nextMs - announcedMs) > announcedMs * REANNOUNCE_SHARE;
}

export function validateKeepalivePolicy(o: KeepalivePolicyOptions): void {
  const check = (name: keyof KeepalivePolicyOptions, min: number, max: number): void => {
    const v = o[name];
    if (!Number.isFinite(v) || v < min || v > max) throw new RangeError(`keepalive.${name} must be between ${min} and ${max}, got ${v}`);
  };
  check('minIntervalMs', 1, 3_600_000);
  check('maxIntervalMs', o.minIntervalMs, 3_600_000);
  check('lbIdleWindowMs', 1_000, 24 * 3_600_000);
  check('deadPeerDetectMs', 3, 24 * 3_600_000);
  check('heartbeatBudgetPerSec', 0.01, 10_000_000);
  check('baseIdleMs', 1, 24 * 3_600_000);
  const { capMs } = keepaliveCapMs(o);
  if (capMs < o.minIntervalMs) {
    throw new RangeError(
      `keepalive: the interval cap (${Math.round(capMs)} ms from lbIdleWindowMs*0.8 - ${LB_SLACK_MS} ms, deadPeerDetectMs/3 and maxIntervalMs) is below minIntervalMs (${o.minIntervalMs} ms); lower minIntervalMs or raise the windows`,
    );
  }
}
