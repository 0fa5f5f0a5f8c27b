import { decodeJwt, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/config.js';
import type { Clock } from '../domain/clock.js';
import type { Federation } from '../domain/federation.js';
import { keySetsOf } from '../net/client.js';
import type { KeySets } from '../net/key-sets.js';
import { OAuthError } from './oauth-error.js';

/** RFC 8693 §3 token types a workload's OIDC token may be presented as. */
export const SUBJECT_TOKEN_TYPES = [
  'urn:ietf:params:oauth:token-type:jwt',
  'urn:ietf:params:oauth:token-type:id_token',
] as const;

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
 * Trust-record keys live in the broker's one JWKS cache (`net/key-sets.ts`), shared with signal
 * transmitters: fetched through the outbound client (size and time caps, no private
 * destinations), at most once per window per record whether the fetch works or not.
 */
export type JwksCache = KeySets;

/** The JWKS cache of one broker (keyed by its context object, so brokers in one process never share). */
export function jwksCacheOf(owner: { config: BrokerConfig; clock: Clock; logger?: Logger }): JwksCache {
  return keySetsOf(owner);
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

/**
 * Said of every failure to get the issuer's keys, whatever it was (a refused destination, a
 * closed port, an error status, an oversized or malformed answer): the text tells whoever chose
 * the `jwks_uri` nothing about what is there.
 */
const KEYS_UNREACHABLE = "the issuer's keys are unreachable; try again later";

/** A client-safe description of why jose refused the token. */
function describeFailure(err: unknown): string {
  // Fetch failures reach us as the outbound client's `Unreachable`, never as jose's errors.
  if (!(err instanceof joseErrors.JOSEError)) return KEYS_UNREACHABLE;
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
    case 'ERR_JWKS_INVALID':
    case 'ERR_JOSE_GENERIC':
      return KEYS_UNREACHABLE;
    default:
      return 'the subject token is malformed or uses an unsupported format';
  }
}
