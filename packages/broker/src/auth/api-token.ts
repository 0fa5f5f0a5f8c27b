import { randomUUID } from 'node:crypto';
import { type JWTPayload, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { Principal } from '../domain/principal.js';
import { SIGNING_ALG, type SigningKeys } from '../tokens/keys.js';

/** The scope that marks a token as good for the broker's own API and nothing else. */
export const BROKER_API_SCOPE = 'tether:api';

/**
 * Claim naming the registered key (RFC 7638 thumbprint) whose client assertion obtained the
 * token. The broker refuses the token as soon as that key is no longer registered, so removing
 * a key revokes every token minted with it at once, not when they expire.
 */
export const CLIENT_KEY_CLAIM = 'tether_ckid';

export interface ApiTokenSettings {
  issuer: string;
  ttlSeconds: number;
  now: number;
  /** When the client proved a DPoP key at issuance, the token is bound to it (`cnf.jkt`). */
  jkt?: string | undefined;
  /** The registered key that signed the client assertion (its thumbprint). */
  clientKid: string;
}

/** A short-lived broker-API access token (RFC 9068 shape, audience = the broker itself). */
export async function issueApiToken(
  keys: SigningKeys,
  principal: Principal,
  s: ApiTokenSettings,
): Promise<{ token: string; expiresIn: number }> {
  const signer = keys.signer();
  const iat = Math.floor(s.now / 1000);
  const token = await new SignJWT({
    client_id: principal.id,
    tenant: principal.tenantId,
    scope: BROKER_API_SCOPE,
    [CLIENT_KEY_CLAIM]: s.clientKid,
    ...(s.jkt ? { cnf: { jkt: s.jkt } } : {}),
  })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: 'at+jwt', kid: signer.kid })
    .setIssuer(s.issuer)
    .setSubject(principal.id)
    .setAudience(s.issuer)
    .setIssuedAt(iat)
    .setExpirationTime(iat + s.ttlSeconds)
    .setJti(randomUUID())
    .sign(signer.privateKey);
  return { token, expiresIn: s.ttlSeconds };
}

export interface ApiTokenClaims {
  /** Set when the token is DPoP-bound: it must then be presented with a proof by that key. */
  jkt: string | undefined;
  principalId: string;
  tenantId: string;
  /** The registered key that obtained the token: it must still be registered when the token is used. */
  clientKid: string;
}

export class ApiTokenRejected extends Error {
  override readonly name = 'ApiTokenRejected';
}

/** Verifies a broker-API token: signature by one of our keys, `typ`, issuer, audience, expiry, scope. */
export async function verifyApiToken(
  keys: SigningKeys,
  token: string,
  s: { issuer: string; now: number; clockToleranceSeconds: number },
): Promise<ApiTokenClaims> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(
      token,
      async (header) => {
        const key = header.kid ? keys.verificationKey(header.kid) : undefined;
        if (!key) throw new ApiTokenRejected('unknown signing key');
        return key;
      },
      {
        algorithms: [SIGNING_ALG],
        typ: 'at+jwt',
        issuer: s.issuer,
        audience: s.issuer,
        requiredClaims: ['sub', 'exp', 'iat', 'jti'],
        clockTolerance: s.clockToleranceSeconds,
        currentDate: new Date(s.now),
      },
    ));
  } catch (err) {
    if (err instanceof ApiTokenRejected) throw err;
    if (err instanceof joseErrors.JWTExpired) throw new ApiTokenRejected('the access token has expired');
    throw new ApiTokenRejected('the access token is invalid');
  }
  if (
    payload.scope !== BROKER_API_SCOPE ||
    typeof payload.tenant !== 'string' ||
    typeof payload.sub !== 'string'
  ) {
    throw new ApiTokenRejected('the access token is not a broker API token');
  }
  const clientKid = payload[CLIENT_KEY_CLAIM];
  // Tokens from before the claim existed cannot be tied to a key, so they cannot be revoked with it.
  if (typeof clientKid !== 'string' || clientKid === '')
    throw new ApiTokenRejected('the access token does not name the key that obtained it; get a new one');
  const cnf = payload.cnf as { jkt?: unknown } | undefined;
  if (cnf !== undefined && typeof cnf?.jkt !== 'string')
    throw new ApiTokenRejected('the access token has a malformed cnf claim');
  return {
    principalId: payload.sub,
    tenantId: payload.tenant,
    jkt: cnf?.jkt as string | undefined,
    clientKid,
  };
}
