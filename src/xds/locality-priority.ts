import type { ClientLocality, DispatcherEndpoint } from './endpoints';

export interface PrioritizedLocality {
  zone: string;
  region: string;
  priority: number;
  weight: number;
  endpoints: DispatcherEndpoint[];
}

/**
 * Orders localities for one client: its own zone first (0), then other zones
 * of its region (1), then other regions (2); a client that names no region
 * sees every other zone at 1. Priorities are renumbered to be
 * contiguous from 0, so an empty level is left out. A client without a zone
 * sees one level. Pure: the same input always gives the same output.
 */
export function prioritizeLocalities(
  endpoints: readonly DispatcherEndpoint[],
  client: ClientLocality,
  weights: Readonly<Record<string, number>> = {},
): PrioritizedLocality[] {
  const byLocality = new Map<string, PrioritizedLocality>();
  for (const endpoint of endpoints) {
    const key = `${endpoint.region}/${endpoint.zone}`;
    let locality = byLocality.get(key);
    if (locality === undefined) {
      locality = { zone: endpoint.zone, region: endpoint.region, priority: rawPriority(endpoint, client), weight: Math.max(1, Math.round(weights[endpoint.zone] ?? 1)), endpoints: [] };
      byLocality.set(key, locality);
    }
    locality.endpoints.push(endpoint);
  }
  const levels = [...new Set([...byLocality.values()].map((l) => l.priority))].sort((a, b) => a - b);
  const localities = [...byLocality.values()].map((l) => ({ ...l, priority: levels.indexOf(l.priority), endpoints: [...l.endpoints].sort((a, b) => a.id.localeCompare(b.id)) }));
  return localities.sort((a, b) => a.priority - b.priority || a.region.localeCompare(b.region) || a.zone.localeCompare(b.zone));
}

function rawPriority(endpoint: DispatcherEndpoint, client: ClientLocality): number {
  if (client.zone === '' && client.region === '') return 0;
  // A side that does not name its region matches any region: zone names are meant to be unique.
  const sameRegion = endpoint.region === client.region || endpoint.region === '' || client.region === '';
  if (endpoint.zone === client.zone && sameRegion) return 0;
  if (client.region !== '' && endpoint.region === client.region) return 1;
  if (client.region === '' && client.zone !== '') return 1;
  return 2;
}
