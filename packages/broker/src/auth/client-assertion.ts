import {
  decodeJwt,
  decodeProtectedHeader,
  importJWK,
  type JWK,
  type JWTPayload,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import type { Principal } from '../domain/principal.js';
import type { StoreHandle } from '../store/database.js';
import { findPrincipalAnyTenant, listAuthenticatingKeys } from '../store/repositories/principals.js';
import { rememberOnce } from '../store/single-use.js';
import { OAuthError } from './oauth-error.js';

export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Asymmetric algorithms only: a client authenticates with a key pair, never a shared secret. */
export const CLIENT_ASSERTION_ALGS = ['EdDSA', 'Ed25519', 'ES256', 'ES384'];

export interface AssertionPolicy {
  /** Accepted `aud` values: the token endpoint URL and the issuer identifier. */
  audiences: string[];
  maxAgeSeconds: number;
  clockToleranceSeconds: number;
  now: number;
}

export interface AuthenticatedClient {
  principal: Principal;
  kid: string;
  jti: string;
}

/** A client whose assertion verified, its `jti` not yet spent (see {@link spendClientAssertion}). */
export interface VerifiedClient extends AuthenticatedClient {
  /** Epoch ms until which the jti must be remembered: the assertion is acceptable that long. */
  rememberUntil: number;
}

function refuse(description: string, cause?: unknown): never {
  throw new OAuthError('invalid_client', description, cause === undefined ? undefined : { cause });
}

/**
 * A refusal of an assertion whose signature verified: the principal really signed it, so the
 * attempt belongs in its tenant's audit trail. Refusals before that are anyone's noise and go
 * to the log only, so no one without a key can write to a tenant's audit chain.
 */
export class SignedAssertionRefused extends OAuthError {
  constructor(
    readonly principal: Principal,
    description: string,
  ) {
    super('invalid_client', description);
  }
}

function refuseSigned(principal: Principal, description: string): never {
  throw new SignedAssertionRefused(principal, description);
}

type AssertionForm = {
  client_assertion_type?: string | undefined;
  client_assertion?: string | undefined;
  client_id?: string | undefined;
};

/**
 * RFC 7523 `private_key_jwt`: the assertion must be signed by one of the principal's
 * registered keys, with `iss` = `sub` = the principal, our token endpoint as `aud`, a short
 * life, and a `jti` never seen before (recorded durably, so replicas share it).
 */
export async function verifyClientAssertion(
  store: StoreHandle,
  form: AssertionForm,
  policy: AssertionPolicy,
): Promise<AuthenticatedClient> {
  const client = await checkClientAssertion(store, form, policy);
  await spendClientAssertion(store, client);
  return { principal: client.principal, kid: client.kid, jti: client.jti };
}

/**
 * Every check of {@link verifyClientAssertion} but single use: the caller spends the `jti`
 * with {@link spendClientAssertion} in the transaction of the grant it authenticates, before
 * anything is issued, so the grant costs one durable commit, not one per single-use id.
 */
export async function checkClientAssertion(
  store: StoreHandle,
  form: AssertionForm,
  policy: AssertionPolicy,
): Promise<VerifiedClient> {
  if (form.client_assertion_type !== JWT_BEARER_ASSERTION_TYPE || !form.client_assertion) {
    refuse(
      `client authentication requires client_assertion_type=${JWT_BEARER_ASSERTION_TYPE} and a client_assertion`,
    );
  }
  const assertion = form.client_assertion;
  let claims: JWTPayload;
  let kidHint: string | undefined;
  try {
    claims = decodeJwt(assertion);
    kidHint = decodeProtectedHeader(assertion).kid;
  } catch (err) {
    refuse('client_assertion is not a JWT', err);
  }
  if (typeof claims.iss !== 'string' || claims.iss !== claims.sub)
    refuse('client_assertion must have iss equal to sub');
  if (form.client_id !== undefined && form.client_id !== claims.iss)
    refuse('client_id does not match the assertion');
  const principal = await findPrincipalAnyTenant(store, claims.iss);
  if (!principal) refuse('unknown client');

  // A seat in a customer tenant signs with its operator's own keys (see listAuthenticatingKeys).
  const keys = (await listAuthenticatingKeys(store, principal)).filter(
    (k) => kidHint === undefined || k.kid === kidHint,
  );
  if (keys.length === 0)
    refuse(kidHint ? 'no registered key has that kid' : 'the principal has no registered key');

  let verified: { payload: JWTPayload; kid: string } | undefined;
  let lastError: unknown;
  for (const key of keys) {
    try {
      const alg = key.publicJwk.kty === 'OKP' ? 'EdDSA' : key.publicJwk.crv === 'P-256' ? 'ES256' : 'ES384';
      const cryptoKey = await importedKey(key.publicJwk, alg);
      const { payload } = await jwtVerify(assertion, cryptoKey, {
        algorithms: CLIENT_ASSERTION_ALGS,
        issuer: principal.id,
        subject: principal.id,
        audience: policy.audiences,
        requiredClaims: ['exp', 'iat', 'jti'],
        maxTokenAge: policy.maxAgeSeconds,
        clockTolerance: policy.clockToleranceSeconds,
        currentDate: new Date(policy.now),
      });
      verified = { payload, kid: key.kid };
      break;
    } catch (err) {
      lastError = err;
      // A claim failure is the same whichever key verified it: stop and say which claim.
      if (err instanceof joseErrors.JWTClaimValidationFailed || err instanceof joseErrors.JWTExpired) break;
    }
  }
  if (!verified) {
    // jose checks the signature before the claims: a claim failure means the principal signed it.
    const signed =
      lastError instanceof joseErrors.JWTExpired || lastError instanceof joseErrors.JWTClaimValidationFailed;
    if (signed) refuseSigned(principal, describeFailure(lastError));
    refuse(describeFailure(lastError), lastError);
  }
  // Only after the signature: whether a principal is disabled is no business of someone without its key.
  if (!principal.enabled) refuseSigned(principal, 'the principal is disabled');
  const { payload } = verified;
  if ((payload.exp as number) - (payload.iat as number) > policy.maxAgeSeconds) {
    refuseSigned(principal, `client_assertion lifetime exceeds ${policy.maxAgeSeconds} s`);
  }
  const jti = payload.jti as string;
  if (jti.length > 256) refuseSigned(principal, 'client_assertion jti is too long');
  return {
    principal,
    kid: verified.kid,
    jti,
    rememberUntil: (payload.exp as number) * 1000 + policy.clockToleranceSeconds * 1000,
  };
}

/** Public keys already imported, by their key material: importing is a fifth of a verification. */
const importedKeys = new Map<string, Promise<Awaited<ReturnType<typeof importJWK>>>>();
const IMPORTED_KEYS_MAX = 1024;

/**
 * The registered key as a CryptoKey, imported once per distinct JWK and algorithm (the cache
 * key is the JWK itself, so a changed or removed key is never served from it: the registered
 * keys are read from the store on every assertion).
 */
function importedKey(jwk: JWK, alg: string): Promise<Awaited<ReturnType<typeof importJWK>>> {
  // The whole JWK as registered (key_ops, use and ext included: they shape the imported key).
  const id = JSON.stringify([alg, jwk]);
  let key = importedKeys.get(id);
  if (key === undefined) {
    key = importJWK(jwk, alg);
    // A key that does not import is not kept: the next assertion tries again, and fails alike.
    key.catch(() => importedKeys.delete(id));
    if (importedKeys.size >= IMPORTED_KEYS_MAX)
      importedKeys.delete(importedKeys.keys().next().value as string);
    importedKeys.set(id, key);
  }
  return key;
}

function describeFailure(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'client_assertion has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed)
    return `client_assertion ${err.claim} claim is invalid (${err.reason})`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return 'client_assertion uses an algorithm that is not accepted';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return 'client_assertion signature does not verify with a registered key';
  return 'client_assertion is invalid';
}

/**
 * Single use: a second insert of the same (principal, jti) fails on the primary key, and the
 * assertion is refused as a replay. In the caller's transaction when `h` is one (committed
 * with the grant), else in a commit of its own.
 */
export async function spendClientAssertion(h: StoreHandle, client: VerifiedClient): Promise<void> {
  const first = await rememberOnce(h, 'client_assertion_jtis', {
    principal_id: client.principal.id,
    jti: client.jti,
    expires_at: client.rememberUntil,
  });
  if (!first) refuseSigned(client.principal, 'client_assertion has already been used (jti replay)');
}

export async function pruneSpentJtis(store: StoreHandle, now: number): Promise<void> {
  await store.db.deleteFrom('client_assertion_jtis').where('expires_at', '<', now).execute();
}
