import { isIPv4, isIPv6 } from 'node:net';

/** A dispatcher instance as the control plane knows it. */
export type EndpointHealth = 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'UNKNOWN';

export interface DispatcherEndpoint {
  id: string;
  /** An IP literal: clients NACK host names. */
  ip: string;
  port: number;
  zone: string;
  region: string;
  health: EndpointHealth;
}

export interface ClientLocality {
  zone: string;
  region: string;
}

const ADDRESS = /^(?:\[([^\]]*)\]|([^:]*)):(\d{1,5})$/;

/**
 * Splits "ipv4:port" or "[ipv6]:port"; throws a message that names the
 * address when it is not an IP literal with a decimal port.
 */
export function parseEndpointAddress(address: string): { ip: string; port: number } {
  const match = ADDRESS.exec(address);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65535) throw new RangeError(`"${address}" must be ip:port`);
  const bracketed = match[1];
  const ip = bracketed ?? match[2] ?? '';
  const valid = bracketed !== undefined ? isIPv6(ip) : isIPv4(ip);
  if (!valid) throw new RangeError(`"${address}": the host must be an IP literal (xDS clients reject names such as localhost)`);
  return { ip, port };
}
