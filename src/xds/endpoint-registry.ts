import type { DispatcherEndpoint, EndpointHealth } from './endpoints';

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
  lastSeenMs: number;
  health: EndpointHealth;
  isStatic: boolean;
}

export interface RegistryOptions {
  /** A registered dispatcher silent this long is UNHEALTHY. */
  healthWindowMs: number;
  /** ... and this long, removed. */
  removeAfterMs: number;
}

/**
 * Which dispatchers exist and whether they are healthy. Dispatchers keep
 * their registration alive with heartbeats; `sweep` marks the silent ones
 * UNHEALTHY and later removes them. Static endpoints (from a file) never
 * expire. Pure: time is a parameter. Every method returns whether the
 * endpoint list changed, so the control plane pushes only on change.
 */
export class EndpointRegistry {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly options: RegistryOptions) {}

  heartbeat(registration: Registration, nowMs: number): boolean {
    const existing = this.entries.get(registration.id);
    const health: EndpointHealth = registration.draining ? 'DRAINING' : 'HEALTHY';
    const changed =
      existing === undefined ||
      existing.health !== health ||
      existing.registration.ip !== registration.ip ||
      existing.registration.port !== registration.port ||
      existing.registration.zone !== registration.zone ||
      existing.registration.region !== registration.region;
    this.entries.set(registration.id, { registration, lastSeenMs: nowMs, health, isStatic: false });
    return changed;
  }

  deregister(id: string): boolean {
    return this.entries.delete(id);
  }

  /** Replaces the static endpoints; registered ones are kept. */
  setStatic(registrations: readonly Registration[]): boolean {
    let changed = false;
    for (const [id, entry] of this.entries) {
      if (entry.isStatic && !registrations.some((r) => r.id === id)) {
        this.entries.delete(id);
        changed = true;
      }
    }
    for (const registration of registrations) {
      const existing = this.entries.get(registration.id);
      const health: EndpointHealth = registration.draining ? 'DRAINING' : 'UNKNOWN';
      if (existing === undefined || !existing.isStatic || existing.health !== health || existing.registration.ip !== registration.ip || existing.registration.port !== registration.port || existing.registration.zone !== registration.zone || existing.registration.region !== registration.region) {
        changed = true;
      }
      this.entries.set(registration.id, { registration, lastSeenMs: 0, health, isStatic: true });
    }
    return changed;
  }

  /** Marks silent dispatchers UNHEALTHY, removes long-silent ones. */
  sweep(nowMs: number): boolean {
    let changed = false;
    for (const [id, entry] of this.entries) {
      if (entry.isStatic) continue;
      const silentMs = nowMs - entry.lastSeenMs;
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
      const at = entry.health === 'UNHEALTHY' ? entry.lastSeenMs + this.options.removeAfterMs : entry.lastSeenMs + this.options.healthWindowMs;
      next = next === undefined ? at : Math.min(next, at);
    }
    return next;
  }

  endpoints(): DispatcherEndpoint[] {
    return [...this.entries.values()]
      .map((e) => ({ id: e.registration.id, ip: e.registration.ip, port: e.registration.port, zone: e.registration.zone, region: e.registration.region, health: e.health }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Zones with at least one dispatcher that takes new work. */
  healthyZones(): string[] {
    const zones = new Set<string>();
    for (const e of this.entries.values()) if (e.health === 'HEALTHY' || e.health === 'UNKNOWN') zones.add(e.registration.zone);
    return [...zones].sort();
  }
}
