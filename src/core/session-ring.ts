import type { SessionState } from './session';

/**
 * The sessions serving one queue that have free slots, in round-robin
 * order: a session that was just served moves to the end. Sessions without
 * credit are dropped lazily and offered again when a slot frees.
 */
export class SessionRing {
  /** Insertion order is the round-robin order. */
  private readonly ring = new Map<string, SessionState>();

  constructor(readonly queue: string) {}

  offer(session: SessionState): void {
    if (!this.ring.has(session.id)) this.ring.set(session.id, session);
  }

  forget(sessionId: string): void {
    this.ring.delete(sessionId);
  }

  get size(): number {
    return this.ring.size;
  }

  /**
   * The session to serve next: the first in round-robin order with credit,
   * of `zone` when `onlyZone` (or preferring `zone` when one there has
   * credit). '' as zone means any.
   */
  pick(zone: string, onlyZone: boolean): SessionState | undefined {
    let first: SessionState | undefined;
    for (const [id, session] of this.ring) {
      if (session.credit <= 0) {
        this.ring.delete(id);
        continue;
      }
      if (zone === '' || session.zone === zone) return session;
      if (!onlyZone) first ??= session;
    }
    return first;
  }

  /** Moves a just-served session to the end (or out of the ring when full). */
  served(session: SessionState): void {
    this.ring.delete(session.id);
    if (session.credit > 0) this.ring.set(session.id, session);
  }

  /** The sessions with credit, in round-robin order (drops the ones without). */
  withCredit(): SessionState[] {
    const out: SessionState[] = [];
    for (const [id, session] of this.ring) {
      if (session.credit > 0) out.push(session);
      else this.ring.delete(id);
    }
    return out;
  }
}
