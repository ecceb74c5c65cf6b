import type { DispatcherEndpoint, EndpointHealth } from './endpoints';
import { checkRegistration, REGISTRATION_LIMITS } from './registration-limits';
import { RegistrationRefusedError } from './registration-refused-error';

export interface Registration {
  id: string;
  ip: string;
  port: number;
  zone: string;
  region: string;
  draining: boolean;
}

interface Entry {
  registration: Registration;
  /** When the last heartbeat was read. */
  lastSeenMs: number;
  health: EndpointHealth;
  isStatic: boolean;
}

/** A time span during which this process did not run (a stall), so it read no heartbeat. */
interface Stall {
  fromMs: number;
  toMs: number;
}

export interface RegistryOptions {
  /** A registered dispatcher silent this long is UNHEALTHY. */
  healthWindowMs: number;
  /** ... and this long, removed. */
  removeAfterMs: number;
}

const MAX_DISPLACED_REMEMBERED = 1_000;
const MAX_STALLS_REMEMBERED = 64;

const addressOf = (r: Registration): string => (r.ip.includes(':') ? `[${r.ip}]:${r.port}` : `${r.ip}:${r.port}`);

/**
 * Which dispatchers exist and whether they are healthy. Dispatchers keep
 * their registration alive with heartbeats; `sweep` marks the silent ones
 * UNHEALTHY and later removes them. Static endpoints (from a file) never
 * expire. Pure: time is a parameter. Every method returns whether the
 * endpoint list changed, so the control plane pushes only on change.
 *
 * Invariants:
 * - an address appears at most once in `endpoints()` (grpc-js-xds NACKs a
 *   list with a duplicate): among registered endpoints a new registration at
 *   an address replaces the one that held it; a registered endpoint hides a
 *   static one at the same address.
 * - silence is counted only while this process ran: a stall noted with
 *   `noteStall` is taken off, so heartbeats that queued up unread during it
 *   are not mistaken for silence.
 */
export class EndpointRegistry {
  private readonly entries = new Map<string, Entry>();
  /** id -> the id that took its address. Its heartbeats are refused while that one is alive there. */
  private readonly displaced = new Map<string, string>();
  private stalls: Stall[] = [];

  constructor(private readonly options: RegistryOptions) {}

  /** Registers or refreshes a dispatcher; throws RegistrationRefusedError when the registration is refused. */
  heartbeat(registration: Registration, nowMs: number): boolean {
    checkRegistration(registration);
    const address = addressOf(registration);
    this.refuseIfDisplaced(registration.id, address);
    const existing = this.entries.get(registration.id);
    if ((existing === undefined || existing.isStatic) && this.entries.size >= REGISTRATION_LIMITS.maxEndpoints) {
      throw new RegistrationRefusedError('REGISTRY_FULL', `${this.entries.size} endpoints are registered, the most this control plane serves`);
    }
    let changed = false;
    // A new registration at an address replaces the one that held it (a dispatcher restarted under a new id).
    for (const [id, other] of this.entries) {
      if (id === registration.id || other.isStatic || addressOf(other.registration) !== address) continue;
      this.entries.delete(id);
      this.remember(id, registration.id);
      changed = true;
    }
    const health: EndpointHealth = registration.draining ? 'DRAINING' : 'HEALTHY';
    changed ||=
      existing === undefined ||
      existing.isStatic ||
      existing.health !== health ||
      existing.registration.ip !== registration.ip ||
      existing.registration.port !== registration.port ||
      existing.registration.zone !== registration.zone ||
      existing.registration.region !== registration.region;
    this.entries.set(registration.id, { registration, lastSeenMs: nowMs, health, isStatic: false });
    return changed;
  }

  deregister(id: string): boolean {
    const entry = this.entries.get(id);
    if (entry === undefined || entry.isStatic) return false;
    return this.entries.delete(id);
  }

  /** Replaces the static endpoints; registered ones are kept. */
  setStatic(registrations: readonly Registration[]): boolean {
    for (const r of registrations) checkRegistration(r);
    const registered = [...this.entries.values()].filter((e) => !e.isStatic).length;
    if (registered + registrations.length > REGISTRATION_LIMITS.maxEndpoints) {
      throw new RegistrationRefusedError('REGISTRY_FULL', `${registrations.length} static endpoints and ${registered} registered ones are more than the ${REGISTRATION_LIMITS.maxEndpoints} this control plane serves`);
    }
    let changed = false;
    for (const [id, entry] of this.entries) {
      if (entry.isStatic && !registrations.some((r) => r.id === id)) {
        this.entries.delete(id);
        changed = true;
      }
    }
    for (const registration of registrations) {
      const existing = this.entries.get(registration.id);
      if (existing !== undefined && !existing.isStatic) continue; // A dispatcher registered under this id: its heartbeats win.
      const health: EndpointHealth = registration.draining ? 'DRAINING' : 'UNKNOWN';
      if (existing === undefined || existing.health !== health || existing.registration.ip !== registration.ip || existing.registration.port !== registration.port || existing.registration.zone !== registration.zone || existing.registration.region !== registration.region) {
        changed = true;
      }
      this.entries.set(registration.id, { registration, lastSeenMs: 0, health, isStatic: true });
    }
    return changed;
  }

  /**
   * Records that this process did not run from `fromMs` to `toMs` (a
   * SIGSTOP, a blocked event loop): heartbeats sent meanwhile were not read,
   * so that span does not count as silence.
   */
  noteStall(fromMs: number, toMs: number): void {
    if (!(toMs > fromMs)) return;
    this.stalls.push({ fromMs, toMs });
    const oldestSeenMs = Math.min(...[...this.entries.values()].filter((e) => !e.isStatic).map((e) => e.lastSeenMs));
    this.stalls = this.stalls.filter((s) => s.toMs > oldestSeenMs).slice(-MAX_STALLS_REMEMBERED);
  }

  /** Marks silent dispatchers UNHEALTHY, removes long-silent ones. */
  sweep(nowMs: number): boolean {
    let changed = false;
    for (const [id, entry] of this.entries) {
      if (entry.isStatic) continue;
      const silentMs = nowMs - entry.lastSeenMs - this.stalledMs(entry.lastSeenMs, nowMs);
      if (silentMs >= this.options.removeAfterMs) {
        this.entries.delete(id);
        changed = true;
      } else if (silentMs >= this.options.healthWindowMs && entry.health !== 'UNHEALTHY') {
        entry.health = 'UNHEALTHY';
        changed = true;
      }
    }
    return changed;
  }

  /** Earliest instant at which `sweep` may change something. */
  nextSweepAtMs(): number | undefined {
    let next: number | undefined;
    for (const entry of this.entries.values()) {
      if (entry.isStatic) continue;
      const afterMs = entry.health === 'UNHEALTHY' ? this.options.removeAfterMs : this.options.healthWindowMs;
      const at = entry.lastSeenMs + afterMs + this.stalledMs(entry.lastSeenMs, Number.POSITIVE_INFINITY);
      next = next === undefined ? at : Math.min(next, at);
    }
    return next;
  }

  /** Every endpoint, each address once (a registered endpoint hides a static one at its address). */
  endpoints(): DispatcherEndpoint[] {
    const byAddress = new Map<string, Entry>();
    const ordered = [...this.entries.values()].sort((a, b) => Number(a.isStatic) - Number(b.isStatic) || a.registration.id.localeCompare(b.registration.id));
    for (const e of ordered) {
      const address = addressOf(e.registration);
      if (!byAddress.has(address)) byAddress.set(address, e);
    }
    return [...byAddress.values()]
      .map((e) => ({ id: e.registration.id, ip: e.registration.ip, port: e.registration.port, zone: e.registration.zone, region: e.registration.region, health: e.health }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Zones with at least one dispatcher that takes new work. */
  healthyZones(): string[] {
    const zones = new Set<string>();
    for (const e of this.endpoints()) if (e.health === 'HEALTHY' || e.health === 'UNKNOWN') zones.add(e.zone);
    return [...zones].sort();
  }

  /** How long this process stalled between `fromMs` and `toMs`. */
  private stalledMs(fromMs: number, toMs: number): number {
    let total = 0;
    for (const s of this.stalls) total += Math.max(0, Math.min(s.toMs, toMs) - Math.max(s.fromMs, fromMs));
    return total;
  }

  private refuseIfDisplaced(id: string, address: string): void {
    const byId = this.displaced.get(id);
    if (byId === undefined) return;
    const holder = this.entries.get(byId);
    if (holder !== undefined && !holder.isStatic && holder.health !== 'UNHEALTHY' && addressOf(holder.registration) === address) {
      throw new RegistrationRefusedError('ADDRESS_TAKEN', `address ${address} was registered again by dispatcher "${byId}", which replaced "${id}" there; it is refused while "${byId}" is alive`);
    }
    this.displaced.delete(id);
  }

  private remember(id: string, byId: string): void {
    this.displaced.delete(id);
    this.displaced.set(id, byId);
    if (this.displaced.size > MAX_DISPLACED_REMEMBERED) {
      const oldest = this.displaced.keys().next().value;
      if (oldest !== undefined) this.displaced.delete(oldest);
    }
  }
}
