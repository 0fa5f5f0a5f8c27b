import { TetherError } from '@tether-broker/protocol';
import { decodeProtectedHeader, importJWK, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import type { Principal, PrincipalKey } from '../domain/principal.js';
import { isUniqueViolation, type TxHandle } from '../store/database.js';
import { CLIENT_ASSERTION_ALGS } from './client-assertion.js';

/**
 * Proof of possession for adding a key to oneself.
 *
 * A broker-API token says "someone logged in as P within the last minutes"; it must not be
 * enough to give that someone a key of their own (which would outlive the token and survive
 * the removal of the key it was minted with). So a principal adding a key to itself also
 * sends a JWS signed by one of its *currently registered* keys, made for this one call:
 *
 * - header `typ: tether-key-proof+jwt`, `kid` = the signing key's RFC 7638 thumbprint;
 * - `iss` = `sub` = the principal, `tenant` = its tenant;
 * - `aud` = `<public URL>/v1/principals/<principal id>/keys` (the call it is for);
 * - `new_key` = the thumbprint of the key being added (so it cannot be reused for another key);
 * - `iat`, `exp` (at most `clientAssertionMaxAgeSeconds` apart), `jti` (single-use, recorded
 *   in the same transaction as the key, in the table that holds spent client-assertion jtis).
 *
 * A stolen Bearer token, or a stolen DPoP-bound token with its DPoP key, is not enough: the
 * proof needs the private half of a key the principal registered, which never leaves its holder.
 */
export interface KeyProofPolicy {
  audience: string;
  newKid: string;
  maxAgeSeconds: number;
  clockToleranceSeconds: number;
  now: number;
}

/** `typ` of a key proof (the client SDK's `createKeyProof` makes them). */
export const KEY_PROOF_JWT_TYPE = 'tether-key-proof+jwt';

/** Prefix of a proof's jti in the spent-jti table, so it never collides with an assertion's. */
const JTI_NAMESPACE = 'key-proof:';
const MAX_JTI_LENGTH = 256;

function refuse(detail: string): never {
  throw new TetherError('key_proof_required', detail);
}

/**
 * Verifies `proof` for adding the key `policy.newKid` to `principal`, against the keys it has
 * registered now, and spends its jti inside `tx` (so a refused or rolled-back addition leaves
 * no trace, and a replay is refused). Throws `key_proof_required` with the reason.
 */
export async function verifyKeyProof(
  tx: TxHandle,
  principal: Principal,
  registered: readonly PrincipalKey[],
  proof: string | undefined,
  policy: KeyProofPolicy,
): Promise<{ kid: string }> {
  if (!proof) {
    refuse(
      'adding a key to yourself needs a proof signed by one of your registered keys (field "proof"), or an admin',
    );
  }
  let kid: string | undefined;
  try {
    kid = decodeProtectedHeader(proof).kid;
  } catch {
    refuse('the key proof is not a JWS');
  }
  const key = registered.find((k) => k.kid === kid);
  if (!key) refuse('the key proof is not signed by a key registered for this principal');
  let payload: JWTPayload;
  try {
    const alg = key.publicJwk.kty === 'OKP' ? 'EdDSA' : key.publicJwk.crv === 'P-256' ? 'ES256' : 'ES384';
    ({ payload } = await jwtVerify(proof, await importJWK(key.publicJwk, alg), {
      algorithms: CLIENT_ASSERTION_ALGS,
      typ: KEY_PROOF_JWT_TYPE,
      issuer: principal.id,
      subject: principal.id,
      audience: policy.audience,
      requiredClaims: ['iat', 'exp', 'jti'],
      maxTokenAge: policy.maxAgeSeconds,
      clockTolerance: policy.clockToleranceSeconds,
      currentDate: new Date(policy.now),
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) refuse('the key proof has expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed)
      refuse(`the key proof ${err.claim} claim is invalid (${err.reason})`);
    refuse('the key proof does not verify with the registered key it names');
  }
  if ((payload.exp as number) - (payload.iat as number) > policy.maxAgeSeconds)
    refuse(`the key proof lifetime exceeds ${policy.maxAgeSeconds} s`);
  if (payload.tenant !== principal.tenantId) refuse('the key proof is for another tenant');
  if (payload.new_key !== policy.newKid) refuse('the key proof is for another key (claim new_key)');
  const jti = payload.jti as string;
  if (jti.length > MAX_JTI_LENGTH) refuse('the key proof jti is too long');
  try {
    await tx.db
      .insertInto('client_assertion_jtis')
      .values({
        principal_id: principal.id,
        jti: `${JTI_NAMESPACE}${jti}`,
        expires_at: (payload.exp as number) * 1000 + policy.clockToleranceSeconds * 1000,
      })
      .execute();
  } catch (err) {
    if (isUniqueViolation(err)) refuse('the key proof has already been used (jti replay)');
    throw err;
  }
  return { kid: key.kid };
}
