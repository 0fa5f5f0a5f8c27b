import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import type { Federation } from '../domain/federation.js';
import { OAuthError } from './oauth-error.js';

/** RFC 8693 §3 token types a workload's OIDC token may be presented as. */
export const SUBJECT_TOKEN_TYPES = [
  'urn:ietf:params:oauth:token-type:jwt',
  'urn:ietf:params:oauth:token-type:id_token',
] as const;

/**
 * How a remote JWKS is fetched and kept. jose keeps the fetched set for `cacheMaxAgeMs` and,
 * when a token names a key it does not hold, fetches again at most once per `cooldownMs`: an
 * issuer's key rotation is picked up, and a flood of unknown `kid`s costs one fetch per
 * cooldown. A set already fetched keeps serving while the issuer is unreachable.
 */
export const REMOTE_JWKS = { timeoutMs: 5000, cooldownMs: 30_000, cacheMaxAgeMs: 10 * 60_000 } as const;

/** More `aud` values than this and the token is not looked up at all. */
const MAX_AUDIENCES = 16;

/** The unverified `iss` and `aud` of a token: enough to find the trust record that may verify it. */
export interface SubjectTokenHint {
  issuer: string;
  audiences: string[];
}

function refuse(description: string, cause?: unknown): never {
  throw new OAuthError('invalid_grant', description, cause === undefined ? undefined : { cause });
}

/**
 * Reads `iss` and `aud` of a subject token without verifying it. Only used to pick the trust
 * record; nothing read here is believed until {@link verifySubjectToken} has passed.
 */
export function peekSubjectToken(token: string): SubjectTokenHint {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(token);
  } catch (err) {
    refuse('subject_token is not a JWT', err);
  }
  const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
  const audiences = aud.filter((a): a is string => typeof a === 'string' && a.length <= 512);
  // Real workload tokens name one audience, or a few; a long list only makes the lookup costly.
  if (typeof claims.iss !== 'string' || audiences.length === 0 || aud.length > MAX_AUDIENCES) {
    refuse('untrusted issuer or audience');
  }
  return { issuer: claims.iss, audiences };
}

/**
 * Key resolvers per trust record, so a remote JWKS is fetched once and reused across
 * exchanges. An entry is replaced when its record's key source changes, and the oldest entry
 * goes when the cache is full.
 */
export class JwksCache {
  readonly #entries = new Map<string, { source: string; keys: JWTVerifyGetKey }>();
  readonly #capacity: number;

  constructor(capacity = 256) {
    this.#capacity = capacity;
  }

  /** The key resolver for a trust record: its inline set, or its remote set (fetched lazily). */
  keysFor(trust: Pick<Federation, 'id' | 'jwksUri' | 'jwks'>): JWTVerifyGetKey {
    const source = trust.jwksUri ?? JSON.stringify(trust.jwks);
    const cached = this.#entries.get(trust.id);
    if (cached && cached.source === source) return cached.keys;
    const keys = trust.jwksUri
      ? createRemoteJWKSet(new URL(trust.jwksUri), {
          timeoutDuration: REMOTE_JWKS.timeoutMs,
          cooldownDuration: REMOTE_JWKS.cooldownMs,
          cacheMaxAge: REMOTE_JWKS.cacheMaxAgeMs,
        })
      : createLocalJWKSet((trust.jwks ?? { keys: [] }) as JSONWebKeySet);
    this.#entries.delete(trust.id);
    if (this.#entries.size >= this.#capacity) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(trust.id, { source, keys });
    return keys;
  }

  /** Drops a trust record's keys (when the record is deleted). */
  forget(id: string): void {
    this.#entries.delete(id);
  }
}

const caches = new WeakMap<object, JwksCache>();

/** The JWKS cache of one broker (keyed by its context object, so brokers in one process never share). */
export function jwksCacheOf(owner: object): JwksCache {
  let cache = caches.get(owner);
  if (!cache) {
    cache = new JwksCache();
    caches.set(owner, cache);
  }
  return cache;
}

export interface SubjectTokenCheck {
  /** Epoch milliseconds: the broker's clock, not the host's. */
  now: number;
  clockToleranceSeconds: number;
}

/**
 * Verifies a workload's token strictly against one trust record: signature by a key of the
 * issuer's JWKS, an allowed asymmetric `alg`, exact `iss`, the record's audience among `aud`,
 * `exp` and `iat` present, not expired, not before `nbf`, and `iat` no older than the record's
 * `max_token_age`. Every failure is `invalid_grant` with a description that says which check
 * failed and never echoes the token; the cause goes to the log.
 *
 * @example
 * ```ts
 * const claims = await verifySubjectToken(jwksCacheOf(ctx), trust, token, { now, clockToleranceSeconds: 30 });
 * ```
 */
export async function verifySubjectToken(
  cache: JwksCache,
  trust: Federation,
  token: string,
  check: SubjectTokenCheck,
): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(token, cache.keysFor(trust), {
      issuer: trust.issuer,
      audience: trust.audience,
      algorithms: trust.algorithms,
      requiredClaims: ['exp', 'iat'],
      maxTokenAge: trust.maxTokenAgeSeconds,
      clockTolerance: check.clockToleranceSeconds,
      currentDate: new Date(check.now),
    });
    return payload;
  } catch (err) {
    refuse(describeFailure(err), err);
  }
}

/** A client-safe description of why jose refused the token. */
function describeFailure(err: unknown): string {
  if (!(err instanceof joseErrors.JOSEError)) {
    // Network failures reach us as plain errors (fetch failed, connection refused).
    return "the issuer's keys could not be fetched; try again later";
  }
  switch (err.code) {
    case 'ERR_JWT_EXPIRED':
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      // jose reports a token older than maxTokenAge as "expired" too, on the iat claim.
      const failed = err as joseErrors.JWTClaimValidationFailed | joseErrors.JWTExpired;
      if (failed.claim === 'exp' && failed.reason === 'check_failed') return 'the subject token has expired';
      if (failed.claim === 'nbf') return 'the subject token is not yet valid (nbf)';
      if (failed.claim === 'iat' && failed.reason === 'check_failed')
        return 'the subject token was issued too long ago or in the future (iat)';
      if (failed.reason === 'missing') return `the subject token has no ${failed.claim} claim`;
      return `the subject token's ${failed.claim} claim is not acceptable`;
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'the subject token is signed with an algorithm this trust does not allow';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'the subject token signature is invalid';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return "no key of the issuer's JWKS matches the subject token";
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return "the issuer's JWKS has several keys that could match; the subject token must name one (kid)";
    case 'ERR_JWKS_TIMEOUT':
      return "the issuer's keys could not be fetched in time; try again later";
    case 'ERR_JWKS_INVALID':
      return "the issuer's JWKS is not a valid key set";
    case 'ERR_JOSE_GENERIC':
      return "the issuer's keys could not be fetched; try again later";
    default:
      return 'the subject token is malformed or uses an unsupported format';
  }
}
