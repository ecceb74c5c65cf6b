import type { Registration } from './endpoint-registry';
import { RegistrationRefusedError } from './registration-refused-error';

/**
 * Bounds on what one registration may hold. They keep the endpoint list a
 * client receives far below grpc-js's 4 MB message limit: 1,000 endpoints of
 * the longest fields, each in its own locality, encode to about 300 KB.
 */
export const REGISTRATION_LIMITS = {
  maxIdChars: 128,
  maxZoneChars: 64,
  maxRegionChars: 64,
  /** "[ipv6]:port" is at most 47 characters. */
  maxAddressChars: 64,
  /** Registered plus static endpoints. */
  maxEndpoints: 1_000,
} as const;

/** The request's raw fields, before the address is parsed. */
export interface RegistrationFields {
  id: string;
  address: string;
  zone: string;
  region: string;
}

/** Throws RegistrationRefusedError FIELD_TOO_LONG naming the first oversized field; checked before anything else is done with the request. */
export function checkRegistrationFields(fields: RegistrationFields): void {
  const check = (name: string, value: string, max: number): void => {
    if (value.length > max) throw new RegistrationRefusedError('FIELD_TOO_LONG', `${name} is ${value.length} characters long; at most ${max} are allowed`);
  };
  check('endpoint_id', fields.id, REGISTRATION_LIMITS.maxIdChars);
  check('address', fields.address, REGISTRATION_LIMITS.maxAddressChars);
  check('zone', fields.zone, REGISTRATION_LIMITS.maxZoneChars);
  check('region', fields.region, REGISTRATION_LIMITS.maxRegionChars);
  if (fields.id === '') throw new RegistrationRefusedError('INVALID', 'endpoint_id is required');
}

/** The same bounds for a parsed registration (static endpoints from the file). */
export function checkRegistration(r: Registration): void {
  checkRegistrationFields({ id: r.id, address: r.ip.includes(':') ? `[${r.ip}]:${r.port}` : `${r.ip}:${r.port}`, zone: r.zone, region: r.region });
}
