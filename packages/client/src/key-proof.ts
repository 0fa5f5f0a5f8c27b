import { randomUUID } from 'node:crypto';
import type { IdentityFile } from '@tether-broker/protocol';
import type { JWK } from 'jose';
import { calculateJwkThumbprint } from 'jose/jwk/thumbprint';
import { SignJWT } from 'jose/jwt/sign';
import { importJWK } from 'jose/key/import';

/** `typ` of a key proof; the broker refuses any other. */
export const KEY_PROOF_JWT_TYPE = 'tether-key-proof+jwt';

/**
 * A proof that the identity holds one of its registered keys, made for adding `newKey` to
 * itself (`POST /v1/principals/<own id>/keys`, field `proof`). The broker refuses a
 * non-admin's own key addition without one, so that a stolen broker-API token cannot plant
 * a key of its own. Single-use and short-lived: make a fresh one for each call.
 *
 * @example
 * ```ts
 * const proof = await createKeyProof(identity, { brokerUrl: identity.broker, newKey: publicJwk });
 * await client.call('POST', `/v1/principals/${identity.principal}/keys`, { jwk: publicJwk, proof });
 * ```
 */
export async function createKeyProof(
  identity: IdentityFile,
  options: { brokerUrl: string; newKey: JWK; lifetimeSeconds?: number; now?: number },
): Promise<string> {
  const jwk = identity.key as JWK;
  const alg = jwk.kty === 'OKP' ? 'EdDSA' : jwk.crv === 'P-384' ? 'ES384' : 'ES256';
  const key = await importJWK(jwk, alg);
  // The broker names registered keys by thumbprint, which uses only the public members.
  const kid = await calculateJwkThumbprint(jwk);
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  return new SignJWT({ tenant: identity.tenant, new_key: await calculateJwkThumbprint(options.newKey) })
    .setProtectedHeader({ alg, typ: KEY_PROOF_JWT_TYPE, kid })
    .setIssuer(identity.principal)
    .setSubject(identity.principal)
    .setAudience(`${options.brokerUrl.replace(/\/+$/, '')}/v1/principals/${identity.principal}/keys`)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.lifetimeSeconds ?? 60))
    .setJti(randomUUID())
    .sign(key);
}
