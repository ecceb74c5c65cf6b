import * as fs from 'node:fs';
import { parseEndpointAddress } from './endpoints';
import type { Registration } from './endpoint-registry';
import { checkRegistration, REGISTRATION_LIMITS } from './registration-limits';
import type { XdsPolicy } from './snapshot';

/**
 * The control plane's file: static endpoints and policy, in JSON.
 *
 * ```json
 * { "endpoints": [{ "address": "10.0.1.5:50051", "zone": "a", "region": "r1" }],
 *   "policy": { "lbPolicy": "ROUND_ROBIN", "localityWeights": { "a": 2 } } }
 * ```
 */
export interface ControlPlaneFile {
  endpoints: Registration[];
  policy: Partial<XdsPolicy>;
}

export function parseControlPlaneFile(text: string, source: string): ControlPlaneFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${source}: must be a JSON object`);
  const { endpoints = [], policy = {} } = doc as { endpoints?: unknown; policy?: unknown };
  if (!Array.isArray(endpoints)) throw new Error(`${source}: "endpoints" must be an array`);
  if (endpoints.length > REGISTRATION_LIMITS.maxEndpoints) throw new Error(`${source}: at most ${REGISTRATION_LIMITS.maxEndpoints} endpoints, got ${endpoints.length}`);
  const ids = new Set<string>();
  const addresses = new Set<string>();
  const registrations = endpoints.map((e: unknown, i): Registration => {
    const where = `${source}: endpoints[${i}]`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new Error(`${where} must be an object`);
    const entry = e as { id?: unknown; address?: unknown; zone?: unknown; region?: unknown; draining?: unknown };
    if (typeof entry.address !== 'string') throw new Error(`${where}.address must be "ip:port"`);
    let parsed: { ip: string; port: number };
    try {
      parsed = parseEndpointAddress(entry.address);
    } catch (err) {
      throw new Error(`${where}.address: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const key of ['id', 'zone', 'region'] as const) {
      if (entry[key] !== undefined && typeof entry[key] !== 'string') throw new Error(`${where}.${key} must be a string`);
    }
    if (entry.draining !== undefined && typeof entry.draining !== 'boolean') throw new Error(`${where}.draining must be true or false`);
    const id = (entry.id as string | undefined) ?? `static:${entry.address}`;
    if (ids.has(id)) throw new Error(`${where}: id "${id}" is used twice`);
    ids.add(id);
    // Clients NACK an endpoint list that holds an address twice.
    if (addresses.has(entry.address)) throw new Error(`${where}: address ${entry.address} is listed twice`);
    addresses.add(entry.address);
    const registration = { id, ip: parsed.ip, port: parsed.port, zone: (entry.zone as string | undefined) ?? '', region: (entry.region as string | undefined) ?? '', draining: entry.draining === true };
    try {
      checkRegistration(registration);
    } catch (err) {
      throw new Error(`${where}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return registration;
  });
  if (typeof policy !== 'object' || policy === null || Array.isArray(policy)) throw new Error(`${source}: "policy" must be an object`);
  const p = policy as Record<string, unknown>;
  const out: Partial<XdsPolicy> = {};
  if (p['lbPolicy'] !== undefined) {
    if (typeof p['lbPolicy'] !== 'string') throw new Error(`${source}: policy.lbPolicy must be a string`);
    out.lbPolicy = p['lbPolicy'];
  }
  if (p['localityWeights'] !== undefined) {
    const weights = p['localityWeights'];
    if (typeof weights !== 'object' || weights === null || Array.isArray(weights) || Object.values(weights).some((w) => typeof w !== 'number' || !(w >= 1 && w <= 1000))) {
      throw new Error(`${source}: policy.localityWeights must map zones to numbers 1..1000`);
    }
    out.localityWeights = weights as Record<string, number>;
  }
  if (p['outlierDetection'] !== undefined) {
    if (typeof p['outlierDetection'] !== 'boolean') throw new Error(`${source}: policy.outlierDetection must be true or false`);
    out.outlierDetection = p['outlierDetection'];
  }
  return { endpoints: registrations, policy: out };
}

/** Watches `path` and calls `apply` with each valid version; an invalid version is reported and skipped. */
export function watchControlPlaneFile(path: string, apply: (file: ControlPlaneFile) => void, onError: (error: Error) => void, intervalMs = 250): () => void {
  let lastText: string | undefined;
  const load = (): void => {
    let text: string;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch (err) {
      onError(new Error(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`));
      return;
    }
    if (text === lastText) return;
    lastText = text;
    try {
      apply(parseControlPlaneFile(text, path));
    } catch (err) {
      onError(err instanceof Error ? err : new Error(String(err)));
    }
  };
  load();
  fs.watchFile(path, { interval: intervalMs, persistent: false }, load);
  return () => fs.unwatchFile(path, load);
}
