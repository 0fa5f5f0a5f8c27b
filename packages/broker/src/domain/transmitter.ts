import { TetherError } from '@tether-broker/protocol';
import { isAcceptableJwksUri } from './federation.js';

/**
 * A CAEP transmitter (typically an identity provider) whose Security Event Tokens the broker
 * accepts at `POST /v1/signals`. A pushed SET carries no credential besides its signature,
 * so its `iss` and `aud` must lead to exactly one registration, across all tenants: the
 * registration's tenant is the tenant the signal is about. The audience is the tenant's own
 * (`<public URL>/tenants/<name>`, or a suffix of it), so no tenant can claim another's.
 */
export interface SignalTransmitter {
  id: string;
  tenantId: string;
  name: string;
  /** The exact `iss` of its SETs. */
  issuer: string;
  /** The `aud` its SETs must carry; by default the tenant's audience `<public URL>/tenants/<name>`. */
  audience: string;
  jwksUri: string | null;
  jwks: { keys: Record<string, unknown>[] } | null;
  createdBy: string;
  createdAt: number;
}

/** Signature algorithms a SET may use: asymmetric only (RS256 is what most identity providers sign with). */
export const SET_ALGORITHMS = ['EdDSA', 'ES256', 'RS256'] as const;

export const SIGNAL_LIMITS = {
  /** A SET older than this (by `iat`) is refused; its `jti` is remembered at least as long. */
  maxAgeSeconds: 600,
  /** A pushed SET's body. */
  maxBodyBytes: 64 * 1024,
} as const;

/** Checks what a schema cannot; throws `invalid_request` naming the field. */
export function assertTransmitterIsCoherent(
  t: Pick<SignalTransmitter, 'issuer' | 'audience' | 'jwksUri' | 'jwks'>,
  brokerUrl: string,
): void {
  const invalid = (detail: string) => new TetherError('invalid_request', detail);
  if ((t.jwksUri === null) === (t.jwks === null)) throw invalid('give exactly one of jwks_uri and jwks');
  if (t.jwksUri !== null && !isAcceptableJwksUri(t.jwksUri))
    throw invalid('jwks_uri must be an https URL without credentials or fragment');
  if (t.issuer.replace(/\/+$/, '') === brokerUrl)
    throw invalid('the broker cannot receive signals from itself');
}
