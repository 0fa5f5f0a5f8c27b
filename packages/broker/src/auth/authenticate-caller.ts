import { DpopError, proofKeyIsNot, type VerifiedDpopProof } from '@tether-broker/pep';
import { TetherError } from '@tether-broker/protocol';
import { verifyBrokerProof } from '../core/broker-dpop.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { assertSeatCovered } from '../core/seats.js';
import { findPrincipal, listAuthenticatingKeys } from '../store/repositories/principals.js';
import { findTenantById } from '../store/repositories/tenants.js';
import { ApiTokenRejected, verifyApiToken } from './api-token.js';
import { loginIdOf, loginIsLive } from './login-token.js';

/** What a request presents to prove who it is. */
export interface PresentedCredentials {
  authorization: string | undefined;
  dpop?: string | string[] | undefined;
  method: string;
  /** Path (and query) as received; `htu` is checked against the public URL plus this path. */
  url: string;
}

const SCHEME = /^(Bearer|DPoP)[ ]+([A-Za-z0-9._~+/-]+=*)$/i;

/**
 * Turns the `Authorization` (and `DPoP`) headers into the caller. A DPoP-bound token must come
 * with the DPoP scheme and a fresh proof by its key; presented as Bearer it is refused. The
 * principal and its keys are read live on every call, so disabling it, or removing the key
 * whose assertion obtained the token, takes effect at once, whatever tokens it still holds.
 */
export async function authenticateCaller(
  ctx: BrokerContext,
  presented: PresentedCredentials,
): Promise<Caller> {
  const match = presented.authorization ? SCHEME.exec(presented.authorization.trim()) : null;
  if (!match?.[1] || !match[2]) {
    throw new TetherError(
      'unauthenticated',
      'send Authorization: DPoP <token> with a DPoP proof, or Bearer <token> (get one at POST /oauth/token)',
    );
  }
  const scheme = match[1].toLowerCase();
  const token = match[2];
  let claims: Awaited<ReturnType<typeof verifyApiToken>>;
  try {
    claims = await verifyApiToken(ctx.keys, token, {
      issuer: ctx.config.publicUrl,
      now: ctx.clock.now(),
      clockToleranceSeconds: ctx.config.clockToleranceSeconds,
    });
  } catch (err) {
    if (err instanceof ApiTokenRejected) throw new TetherError('invalid_token', err.message);
    throw err;
  }
  let proof: VerifiedDpopProof | undefined;
  if (claims.jkt) {
    if (scheme !== 'dpop')
      throw new TetherError(
        'invalid_token',
        'a DPoP-bound token must be sent with the DPoP scheme, not Bearer',
      );
    try {
      proof = await verifyBrokerProof(ctx, presented.dpop, {
        method: presented.method,
        path: presented.url.split('?')[0] ?? '/',
        accessToken: token,
        expectedJkt: claims.jkt,
      });
    } catch (err) {
      if (!(err instanceof DpopError)) throw err;
      // RFC 9449 §7.1: a proof by another key than the token's is a token problem, reported as
      // the PEPs report it (`invalid_token`, "Invalid DPoP key binding").
      if (err.code === 'invalid_dpop_proof' && (await proofKeyIsNot(presented.dpop, claims.jkt)))
        throw new TetherError(
          'invalid_token',
          'Invalid DPoP key binding: the proof key is not the key the token is bound to',
        );
      throw new TetherError(err.code, err.message);
    }
  } else if (scheme === 'dpop') {
    throw new TetherError('invalid_token', 'this token is not DPoP-bound; send it with the Bearer scheme');
  }
  const principal = await findPrincipal(ctx.store, claims.tenantId, claims.principalId);
  const tenant = await findTenantById(ctx.store, claims.tenantId);
  if (!principal || !tenant)
    throw new TetherError('invalid_token', 'the token names a principal that no longer exists');
  if (!principal.enabled) throw new TetherError('principal_disabled', 'the principal is disabled');
  await assertSeatCovered(ctx, principal, ctx.clock.now());
  // A token from `tether login` names its login: ended (logout), it is revoked at once.
  const loginId = loginIdOf(claims.clientKid);
  if (loginId !== undefined) {
    if (!(await loginIsLive(ctx.store, loginId, principal.id)))
      throw new TetherError(
        'invalid_token',
        'the login that obtained this token has ended; run tether login',
      );
    return proof ? { principal, tenant, proof, loginId } : { principal, tenant, loginId };
  }
  // Removing a key revokes the tokens it obtained, from their very next call (no TTL window):
  // read live, like the principal, so every replica sees the removal once it commits.
  if (!(await listAuthenticatingKeys(ctx.store, principal)).some((k) => k.kid === claims.clientKid)) {
    throw new TetherError(
      'invalid_token',
      'the key that obtained this token is no longer registered; the token is revoked',
    );
  }
  return proof ? { principal, tenant, proof } : { principal, tenant };
}
