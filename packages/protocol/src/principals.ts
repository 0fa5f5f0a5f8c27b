/** Who acts. */
export const PRINCIPAL_KINDS = ['human', 'service', 'pipeline', 'agent', 'workload'] as const;
export type PrincipalKind = (typeof PRINCIPAL_KINDS)[number];

/**
 * Roles within a tenant. Anyone may request access; roles grant administration. A `receiver`
 * manages its own SSF event streams (the broker's signals out).
 */
export const ROLES = ['admin', 'auditor', 'pep', 'receiver'] as const;
export type Role = (typeof ROLES)[number];

/** Access-request states; `pending` is the only non-terminal one. */
export const REQUEST_STATES = ['pending', 'approved', 'denied', 'expired', 'cancelled'] as const;
export type RequestState = (typeof REQUEST_STATES)[number];

/** A name for a record: lower-case, readable, never mistaken for an id. */
export const NAME_PATTERN = '^(?![a-z]{3}_[0-9a-z]{26}$)[a-z0-9][a-z0-9._@-]{0,127}$';

/** The identity file that the CLI and the client SDK read (mode 0600). */
export interface IdentityFile {
  broker: string;
  tenant: string;
  principal: string;
  /** Private JWK (Ed25519). Never sent anywhere: only signatures leave the machine. */
  key: Record<string, unknown>;
  /**
   * Set by `tether login`: a broker-API token bound to `key` (then a DPoP key, registered
   * nowhere), used until it expires instead of a client assertion signed with `key`.
   */
  login?: { token: string; expires_at: string };
}
