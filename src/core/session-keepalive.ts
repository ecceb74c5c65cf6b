import { decideKeepalive, shouldReannounce, type KeepalivePolicyOptions } from './keepalive-policy';
import type { SessionState } from './session';

/** What retuning a session's keepalive asks of the engine. */
export interface RetuneOutcome {
  /** Schedule the next heartbeat at this instant (a new configuration takes effect at once). */
  heartbeatAtMs?: number;
  /** Tell the worker its new interval and idle timeout. */
  announce?: { intervalMs: number; idleTimeoutMs: number };
}

/**
 * Recomputes a session's interval and idle timeout from its RTT and the
 * number of sessions (the budget); the worker is told when the interval
 * moved by more than 20 % since it was last told (or, with
 * `announceAnyChange`, on any change: a new configuration). A shorter idle
 * timeout never judges silence that began before it was known.
 */
export function retuneKeepalive(session: SessionState, policy: KeepalivePolicyOptions, sessionCount: number, nowMs: number, announceAnyChange: boolean): RetuneOutcome {
  const decision = decideKeepalive(policy, session.rtt, sessionCount);
  if (session.idleTimeoutMs > 0 && decision.idleTimeoutMs < session.idleTimeoutMs) {
    session.idleNotBeforeMs = Math.max(session.idleNotBeforeMs, Math.min(session.lastInboundMs + session.idleTimeoutMs, nowMs + decision.idleTimeoutMs));
  }
  const changed = decision.intervalMs !== session.intervalMs || decision.idleTimeoutMs !== session.idleTimeoutMs;
  session.intervalMs = decision.intervalMs;
  session.idleTimeoutMs = decision.idleTimeoutMs;
  const out: RetuneOutcome = {};
  if (announceAnyChange && changed) {
    // A new configuration: the next heartbeat follows the new interval at once.
    session.heartbeatGeneration += 1;
    out.heartbeatAtMs = Math.max(nowMs + 1, Math.min(nowMs + decision.intervalMs, session.lastOutboundMs + decision.intervalMs));
  }
  const reannounce = shouldReannounce(session.announcedIntervalMs, decision.intervalMs) || (announceAnyChange && changed);
  if (session.announcedIntervalMs > 0 && reannounce) {
    session.announcedIntervalMs = decision.intervalMs;
    out.announce = { intervalMs: decision.intervalMs, idleTimeoutMs: decision.idleTimeoutMs };
  }
  return out;
}

/** A heartbeat tick's verdict: end the session, or (maybe) ping and come back at `nextAtMs`. */
export type HeartbeatVerdict = { close: 'IDLE' | 'STALLED' } | { close?: undefined; ping?: { nonce: number; sentMs: number }; nextAtMs: number };

/**
 * One heartbeat tick of a session: a worker that does not answer its
 * heartbeat, or does not acknowledge an assignment, within the idle timeout
 * has stopped reading (stalled) even if it keeps sending; silence for the
 * idle timeout is death; an idle stream gets an explicit heartbeat, a busy
 * one does not.
 */
export function heartbeatTick(session: SessionState, nowMs: number, nextNonce: () => number): HeartbeatVerdict {
  // Silence is death, not a stall: the idle rule answers (same instant as the idle deadline).
  const judged = nowMs >= session.idleNotBeforeMs;
  if (judged && nowMs - session.lastInboundMs >= session.idleTimeoutMs) return { close: 'IDLE' };
  const ping = session.outstandingPing;
  const stalledPing = judged && ping !== undefined && nowMs - ping.sentMs >= session.idleTimeoutMs;
  let stalledAssignment = false;
  for (const hold of session.holds.values()) {
    if (judged && !hold.acknowledged && !hold.orphan && nowMs - hold.assignedMs >= session.idleTimeoutMs) stalledAssignment = true;
  }
  if (stalledPing || stalledAssignment) return { close: 'STALLED' };
  let sent: { nonce: number; sentMs: number } | undefined;
  if (ping === undefined && nowMs - session.lastOutboundMs >= session.intervalMs) {
    sent = { nonce: nextNonce(), sentMs: nowMs };
    session.outstandingPing = sent;
    session.pingsSent += 1;
    session.lastOutboundMs = nowMs;
  }
  const pending = session.outstandingPing;
  const nextAtMs =
    pending !== undefined ? Math.min(pending.sentMs + session.idleTimeoutMs, nowMs + session.intervalMs) : Math.max(nowMs + 1, session.lastOutboundMs + session.intervalMs);
  return sent === undefined ? { nextAtMs } : { ping: sent, nextAtMs };
}
