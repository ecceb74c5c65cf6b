/**
 * The demo's three zones and the links between them: one fact, read by the
 * orchestrator (what it prints) and by each zone's load process (which
 * proxies it puts in front of which dispatcher).
 *
 * Within a zone a worker dials its dispatcher directly (loopback, about
 * 0.2 ms round trip). Across zones it goes through a FaultProxy that delays
 * each direction by `oneWayMs`, so the round trip grows by twice that:
 * a↔b 2 ms, b↔c 4 ms, and a↔c 10 ms, the visibly worse pair.
 */
export const DEMO_ZONES = ['a', 'b', 'c'] as const;
export type DemoZone = (typeof DEMO_ZONES)[number];

/** One-way delay added to each cross-zone link, in ms. */
const ONE_WAY_MS: Record<string, number> = { 'a|b': 1, 'b|c': 2, 'a|c': 5 };

/** The one-way delay between two zones: 0 within a zone. */
export function linkOneWayMs(from: string, to: string): number {
  if (from === to) return 0;
  const key = from < to ? `${from}|${to}` : `${to}|${from}`;
  const ms = ONE_WAY_MS[key];
  if (ms === undefined) throw new RangeError(`no demo link between zones ${from} and ${to}`);
  return ms;
}

/** Every cross-zone link once, with the round trip it adds. */
export function demoLinks(): { between: [string, string]; oneWayMs: number; addedRttMs: number }[] {
  return Object.entries(ONE_WAY_MS).map(([key, oneWayMs]) => {
    const [from = '', to = ''] = key.split('|');
    return { between: [from, to], oneWayMs, addedRttMs: 2 * oneWayMs };
  });
}

export function dispatcherIdOf(zone: string): string {
  return `d${zone}`;
}

/** The queue the demo's tasks go to, and the one its idle workers listen on (they only carry heartbeats: the RTT series). */
export const DEMO_QUEUE = 'demo';
export const DEMO_IDLE_QUEUE = 'demo-idle';

/** What the orchestrator hands each zone's load process (as JSON, its one argument). */
export interface ZoneLoadSpec {
  zone: string;
  /** Tasks per second this zone's producer submits. */
  ratePerSec: number;
  dispatchers: { id: string; zone: string; grpcAddress: string }[];
}
