/**
 * Why the control plane refused a registration (a heartbeat or a static
 * endpoint):
 * - FIELD_TOO_LONG: a field is longer than REGISTRATION_LIMITS allows;
 * - INVALID: a field is malformed (an address that is not ip:port, no id);
 * - ADDRESS_TAKEN: a newer registration took this address from this id, and
 *   it is still alive;
 * - REGISTRY_FULL: REGISTRATION_LIMITS.maxEndpoints are registered;
 * - UNAUTHENTICATED: the control plane asks for its registration token and
 *   the call did not carry it (--xds-registration-token-file).
 */
export type RegistrationRefusal = 'FIELD_TOO_LONG' | 'INVALID' | 'ADDRESS_TAKEN' | 'REGISTRY_FULL' | 'UNAUTHENTICATED';

/** Thrown by the registry when it refuses a registration; the control plane answers it with `grpcCode`. */
export class RegistrationRefusedError extends Error {
  constructor(
    readonly reason: RegistrationRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'RegistrationRefusedError';
  }

  /** The gRPC status a heartbeat gets for this refusal. */
  get grpcCode(): number {
    // INVALID_ARGUMENT = 3, ALREADY_EXISTS = 6, RESOURCE_EXHAUSTED = 8, UNAUTHENTICATED = 16.
    return this.reason === 'ADDRESS_TAKEN' ? 6 : this.reason === 'REGISTRY_FULL' ? 8 : this.reason === 'UNAUTHENTICATED' ? 16 : 3;
  }
}
