import { describe, expect, it } from 'vitest';
import { EndpointRegistry, type Registration } from '../../../src/xds/endpoint-registry';
import { checkRegistrationFields, REGISTRATION_LIMITS } from '../../../src/xds/registration-limits';

const T = 1_000_000;
const HEALTH_WINDOW_MS = 1_000;
const REMOVE_AFTER_MS = 60_000;

function registry(): EndpointRegistry {
  return new EndpointRegistry({ healthWindowMs: HEALTH_WINDOW_MS, removeAfterMs: REMOVE_AFTER_MS });
}

/** Each id gets its own address unless a test says otherwise. */
function reg(id: string, overrides: Partial<Registration> = {}): Registration {
  // d1 -> 50051, d2 -> 50052, ...; other prefixes get ports of their own.
  const port = 50_050 + (id.charCodeAt(0) - 'd'.charCodeAt(0)) * 1_000 + Number(id.slice(1).replace(/\D/g, '') || 0);
  return { id, ip: '10.0.0.1', port, zone: 'a', region: 'r1', draining: false, ...overrides };
}

const healthOf = (r: EndpointRegistry): [string, string][] => r.endpoints().map((e) => [e.id, e.health]);

describe('heartbeats', () => {
  it('the first heartbeat registers a HEALTHY endpoint and reports a change', () => {
    const r = registry();
    expect(r.heartbeat(reg('d1'), T)).toBe(true);
    expect(r.endpoints()).toEqual([{ id: 'd1', ip: '10.0.0.1', port: 50051, zone: 'a', region: 'r1', health: 'HEALTHY' }]);
  });

  it('a repeated identical heartbeat is no change, but it refreshes the endpoint', () => {
    const r = registry();
    r.heartbeat(reg('d1'), T);
    expect(r.heartbeat(reg('d1'), T + 900)).toBe(false);
    // Silent since T + 900: still healthy at T + 1899, unhealthy at T + 1900.
    expect(r.sweep(T + 1_899)).toBe(false);
    expect(healthOf(r)).toEqual([['d1', 'HEALTHY']]);
    expect(r.sweep(T + 1_900)).toBe(true);
    expect(healthOf(r)).toEqual([['d1', 'UNHEALTHY']]);
  });

  it.each<[string, Partial<Registration>]>([
    ['ip', { ip: '10.0.0.2' }],
    ['port', { port: 50052 }],
    ['zone', { zone: 'b' }],
    ['region', { region: 'r2' }],
    ['draining', { draining: true }],
  ])('a heartbeat with another %s is a change', (_field, change) => {
    const r = registry();
    r.heartbeat(reg('d1'), T);
    expect(r.heartbeat(reg('d1', change), T + 10)).toBe(true);
    const { draining, ...fields } = change;
    expect(r.endpoints()[0]).toEqual({ id: 'd1', ip: '10.0.0.1', port: 50051, zone: 'a', region: 'r1', ...fields, health: draining === true ? 'DRAINING' : 'HEALTHY' });
    expect(r.endpoints()).toHaveLength(1);
  });

  it('draining: DRAINING, and back to HEALTHY when it stops draining', () => {
    const r = registry();
    r.heartbeat(reg('d1', { draining: true }), T);
    expect(healthOf(r)).toEqual([['d1', 'DRAINING']]);
    expect(r.heartbeat(reg('d1', { draining: true }), T + 100)).toBe(false);
    expect(r.heartbeat(reg('d1'), T + 200)).toBe(true);
    expect(healthOf(r)).toEqual([['d1', 'HEALTHY']]);
  });

  it('deregister removes the endpoint; an unknown id is no change', () => {
    const r = registry();
    r.heartbeat(reg('d1'), T);
    r.heartbeat(reg('d2'), T);
    expect(r.deregister('d1')).toBe(true);
    expect(r.deregister('d1')).toBe(false);
    expect(r.deregister('nope')).toBe(false);
    expect(r.endpoints().map((e) => e.id)).toEqual(['d2']);
  });

  it('endpoints are listed by id, whatever the registration order', () => {
    const r = registry();
    for (const id of ['d3', 'd1', 'd2']) r.heartbeat(reg(id), T);
    expect(r.endpoints().map((e) => e.id)).toEqual(['d1', 'd2', 'd3']);
  });
});

describe('sweep', () => {
  it('silent for healthWindowMs: UNHEALTHY (once); silent for removeAfterMs: removed', () => {
    const r = registry();
    r.heartbeat(reg('d1'), T);
    expect(r.sweep(T + HEALTH_WINDOW_MS - 1)).toBe(false);
    expect(healthOf(r)).toEqual([['d1', 'HEALTHY']]);
    expect(r.sweep(T + HEALTH_WINDOW_MS)).toBe(true);
    expect(healthOf(r)).toEqual([['d1', 'UNHEALTHY']]);
    expect(r.sweep(T + HEALTH_WINDOW_MS + 1)).toBe(false);
    expect(r.sweep(T + REMOVE_AFTER_MS - 1)).toBe(false);
    expect(healthOf(r)).toEqual([['d1', 'UNHEALTHY']]);
    expect(r.sweep(T + REMOVE_AFTER_MS)).toBe(true);
    expect(r.endpoints()).toEqual([]);
    expect(r.sweep(T + REMOVE_AFTER_MS + 1)).toBe(false);
  });

  it('a long-silent endpoint swept late is removed directly', () => {
    const r = registry();
    r.heartbeat(reg('d1'), T);
    expect(r.sweep(T + REMOVE_AFTER_MS + 5)).toBe(true);
    expect(r.endpoints()).toEqual([]);
  });

  it('a DRAINING endpoint that goes silent becomes UNHEALTHY too', () => {
    const r = registry();
    r.heartbeat(reg('d1', { draining: true }), T);
    expect(r.sweep(T + HEALTH_WINDOW_MS)).toBe(true);
    expect(healthOf(r)).toEqual([['d1', 'UNHEALTHY']]);
  });

  it('an UNHEALTHY endpoint that heartbeats again is HEALTHY again, and that is a change', () => {
    const r = registry();
    r.heartbeat(reg('d1'), T);
    r.sweep(T + 5_000);
    expect(r.heartbeat(reg('d1'), T + 6_000)).toBe(true);
    expect(healthOf(r)).toEqual([['d1', 'HEALTHY']]);
    // The removal clock restarted too.
    expect(r.sweep(T + REMOVE_AFTER_MS + 1)).toBe(true);
    expect(healthOf(r)).toEqual([['d1', 'UNHEALTHY']]);
  });

  it('only the silent ones change', () => {
    const r = registry();
    r.heartbeat(reg('d1'), T);
    r.heartbeat(reg('d2', { zone: 'b' }), T + 500);
    expect(r.sweep(T + 1_000)).toBe(true);
    expect(healthOf(r)).toEqual([
      ['d1', 'UNHEALTHY'],
      ['d2', 'HEALTHY'],
    ]);
  });

  it('nextSweepAtMs: the earliest instant a sweep may change something', () => {
    const r = registry();
    expect(r.nextSweepAtMs()).toBeUndefined();
    r.heartbeat(reg('d1'), T);
    r.heartbeat(reg('d2'), T + 300);
    expect(r.nextSweepAtMs()).toBe(T + HEALTH_WINDOW_MS);
    r.sweep(T + HEALTH_WINDOW_MS);
    // d1 is UNHEALTHY (removed at T + 60 s), d2 turns UNHEALTHY at T + 1300.
    expect(r.nextSweepAtMs()).toBe(T + 300 + HEALTH_WINDOW_MS);
    r.sweep(T + 1_300);
    expect(r.nextSweepAtMs()).toBe(T + REMOVE_AFTER_MS);
    r.sweep(T + REMOVE_AFTER_MS);
    expect(r.nextSweepAtMs()).toBe(T + 300 + REMOVE_AFTER_MS);
  });
});

describe('static endpoints', () => {
  it('are UNKNOWN (or DRAINING), never expire, and need no sweep', () => {
    const r = registry();
    expect(r.setStatic([reg('s1'), reg('s2', { draining: true })])).toBe(true);
    expect(healthOf(r)).toEqual([
      ['s1', 'UNKNOWN'],
      ['s2', 'DRAINING'],
    ]);
    expect(r.nextSweepAtMs()).toBeUndefined();
    expect(r.sweep(T + 365 * 24 * 3600_000)).toBe(false);
    expect(healthOf(r)).toEqual([
      ['s1', 'UNKNOWN'],
      ['s2', 'DRAINING'],
    ]);
  });

  it('setting the same list again is no change; a different one is', () => {
    const r = registry();
    r.setStatic([reg('s1'), reg('s2')]);
    expect(r.setStatic([reg('s2'), reg('s1')])).toBe(false);
    expect(r.setStatic([reg('s1'), reg('s2', { port: 1 })])).toBe(true);
    expect(r.setStatic([reg('s1'), reg('s2', { port: 1, draining: true })])).toBe(true);
    expect(r.setStatic([reg('s1')])).toBe(true);
    expect(r.endpoints().map((e) => e.id)).toEqual(['s1']);
    expect(r.setStatic([])).toBe(true);
    expect(r.endpoints()).toEqual([]);
    expect(r.setStatic([])).toBe(false);
  });

  it('replacing the static list keeps the registered endpoints', () => {
    const r = registry();
    r.heartbeat(reg('d1'), T);
    r.setStatic([reg('s1')]);
    expect(r.setStatic([reg('s2')])).toBe(true);
    expect(r.endpoints().map((e) => e.id)).toEqual(['d1', 's2']);
    expect(r.nextSweepAtMs()).toBe(T + HEALTH_WINDOW_MS);
    r.sweep(T + REMOVE_AFTER_MS);
    expect(r.endpoints().map((e) => e.id)).toEqual(['s2']);
  });
});

describe('healthyZones', () => {
  it('lists, sorted and once each, the zones with a HEALTHY or UNKNOWN endpoint', () => {
    const r = registry();
    expect(r.healthyZones()).toEqual([]);
    r.heartbeat(reg('d1', { zone: 'c' }), T);
    r.heartbeat(reg('d2', { zone: 'a' }), T + 800);
    r.heartbeat(reg('d3', { zone: 'a' }), T + 800);
    r.heartbeat(reg('d4', { zone: 'b', draining: true }), T + 800);
    r.setStatic([reg('s1', { zone: 'e' }), reg('s2', { zone: 'f', draining: true })]);
    expect(r.healthyZones()).toEqual(['a', 'c', 'e']);
    r.sweep(T + 1_000); // d1 (zone c) goes UNHEALTHY.
    expect(r.healthyZones()).toEqual(['a', 'e']);
    r.heartbeat(reg('d4', { zone: 'b' }), T + 1_000); // d4 stops draining.
    expect(r.healthyZones()).toEqual(['a', 'b', 'e']);
  });
});

describe('one address, one endpoint (grpc-js-xds NACKs a list with a duplicate address)', () => {
  const at = (port: number): Partial<Registration> => ({ ip: '10.0.0.9', port });

  it('a dispatcher restarted under a new id replaces its old entry at once, whatever the old one was', () => {
    const r = registry();
    r.heartbeat(reg('host-100', at(7000)), T);
    r.heartbeat(reg('other', at(7001)), T);
    // kill -9, and the same command again: a new pid, so a new id, at the same ip:port, while the old entry is still HEALTHY.
    expect(r.heartbeat(reg('host-200', at(7000)), T + 300)).toBe(true);
    expect(healthOf(r)).toEqual([['host-200', 'HEALTHY'], ['other', 'HEALTHY']]);
    const addresses = r.endpoints().map((e) => `${e.ip}:${e.port}`);
    expect(new Set(addresses).size).toBe(addresses.length);
  });

  it('the replaced id is refused (ADDRESS_TAKEN) while the new one is alive there, and may take the address back once it is not', () => {
    const r = registry();
    r.heartbeat(reg('old', at(7000)), T);
    r.heartbeat(reg('new', at(7000)), T + 100);
    // Two live processes claim one address: no flapping, the served list keeps one entry.
    expect(() => r.heartbeat(reg('old', at(7000)), T + 200)).toThrow(expect.objectContaining({ reason: 'ADDRESS_TAKEN', message: expect.stringContaining('"new"') }));
    expect(healthOf(r)).toEqual([['new', 'HEALTHY']]);
    // The replaced id may register elsewhere.
    expect(r.heartbeat(reg('old', at(7005)), T + 250)).toBe(true);
    r.deregister('old');
    // Once "new" is silent for the health window, "old" may come back to the address.
    r.sweep(T + 100 + HEALTH_WINDOW_MS);
    expect(r.heartbeat(reg('old', at(7000)), T + 100 + HEALTH_WINDOW_MS + 1)).toBe(true);
    expect(healthOf(r)).toEqual([['old', 'HEALTHY']]);
  });

  it('a registered dispatcher hides a static endpoint at the same address, and the static one is back when it leaves', () => {
    const r = registry();
    r.setStatic([reg('static-a', at(7000))]);
    r.heartbeat(reg('live', at(7000)), T);
    expect(healthOf(r)).toEqual([['live', 'HEALTHY']]);
    r.deregister('live');
    expect(healthOf(r)).toEqual([['static-a', 'UNKNOWN']]);
  });
});

describe('registration bounds', () => {
  it.each<[string, Partial<Registration>]>([
    ['zone', { zone: 'z'.repeat(2_200_000) }],
    ['region', { region: 'r'.repeat(65) }],
    ['endpoint_id', { id: 'i'.repeat(129) }],
  ])('refuses an oversized %s with FIELD_TOO_LONG naming it, and registers nothing', (field, change) => {
    const r = registry();
    expect(() => r.heartbeat(reg('d1', change), T)).toThrow(expect.objectContaining({ reason: 'FIELD_TOO_LONG', message: expect.stringContaining(field) }));
    expect(r.endpoints()).toEqual([]);
  });

  it('refuses an oversized address before parsing it, and an empty id', () => {
    expect(() => checkRegistrationFields({ id: 'd', address: `10.0.0.1:${'1'.repeat(100)}`, zone: 'a', region: '' })).toThrow(/address is 109 characters long; at most 64/);
    expect(() => checkRegistrationFields({ id: '', address: '10.0.0.1:1', zone: 'a', region: '' })).toThrow(expect.objectContaining({ reason: 'INVALID' }));
  });

  it(`serves at most ${REGISTRATION_LIMITS.maxEndpoints} endpoints: one more is refused with REGISTRY_FULL, a known one still refreshes`, () => {
    const r = registry();
    for (let i = 0; i < REGISTRATION_LIMITS.maxEndpoints; i++) r.heartbeat(reg(`n${i}`, { ip: '10.1.0.1', port: 1 + i }), T);
    expect(() => r.heartbeat(reg('one-more', { ip: '10.1.0.2', port: 1 }), T)).toThrow(expect.objectContaining({ reason: 'REGISTRY_FULL' }));
    expect(r.heartbeat(reg('n0', { ip: '10.1.0.1', port: 1 }), T + 10)).toBe(false);
  });
});

describe('stalls of the control plane are not dispatcher silence', () => {
  it('after a 1.5 s stall, a dispatcher whose heartbeats queued unread stays HEALTHY until a window of running time passes', () => {
    const r = registry();
    r.heartbeat(reg('d1'), T);
    // The process stops at T + 100 and runs again at T + 1_600; the sweep timer is the first thing to run.
    r.noteStall(T + 100, T + 1_600);
    expect(r.sweep(T + 1_600)).toBe(false);
    expect(healthOf(r)).toEqual([['d1', 'HEALTHY']]);
    expect(r.nextSweepAtMs()).toBe(T + HEALTH_WINDOW_MS + 1_500);
    // The queued heartbeat is read: fresh.
    r.heartbeat(reg('d1'), T + 1_610);
    expect(r.sweep(T + 1_610 + HEALTH_WINDOW_MS - 1)).toBe(false);
    // A dispatcher that really went silent is still judged, after a window of running time.
    expect(r.sweep(T + 1_610 + HEALTH_WINDOW_MS)).toBe(true);
    expect(healthOf(r)).toEqual([['d1', 'UNHEALTHY']]);
  });

  it('a stall before the last heartbeat read gives no extra grace', () => {
    const r = registry();
    r.noteStall(T - 5_000, T - 1_000);
    r.heartbeat(reg('d1'), T);
    expect(r.sweep(T + HEALTH_WINDOW_MS)).toBe(true);
  });
});
