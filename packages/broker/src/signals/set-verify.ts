import { decodeJwt, decodeProtectedHeader, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { SET_ALGORITHMS, SIGNAL_LIMITS, type SignalTransmitter } from '../domain/transmitter.js';
import type { StoreHandle } from '../store/database.js';
import { findTransmittersByIssuer } from '../store/repositories/signal-transmitters.js';
import { NonConformingEvent, type ReadEvent, readCaepEvent } from './caep-events.js';
import type { TransmitterKeys } from './transmitter-keys.js';

/** RFC 8417 §2.3: the media type of a SET, and its `typ`. */
export const SET_MEDIA_TYPE = 'application/secevent+jwt';
export const SET_TYP = 'secevent+jwt';

/** RFC 8935 §2.4 (registered in §7.1): why a pushed SET was refused. */
export const SET_ERROR_CODES = [
  'invalid_request',
  'invalid_key',
  'invalid_issuer',
  'invalid_audience',
  'authentication_failed',
  'access_denied',
] as const;
export type SetErrorCode = (typeof SET_ERROR_CODES)[number];

/**
 * A refused SET, answered 400 with RFC 8935's `{ "err": code, "description": text }`. The
 * description is safe to send; the cause goes to the log only.
 */
export class SetRefused extends Error {
  readonly err: SetErrorCode;
  readonly description: string;

  constructor(err: SetErrorCode, description: string, options?: { cause?: unknown }) {
    super(description, options);
    this.name = 'SetRefused';
    this.err = err;
    this.description = description;
  }

  toBody(): { err: SetErrorCode; description: string } {
    return { err: this.err, description: this.description };
  }
}

/** A SET that passed every check: who sent it, its claims, and the one event it carries. */
export interface VerifiedSet {
  transmitter: SignalTransmitter;
  jti: string;
  /** Epoch seconds. */
  iat: number;
  read: ReadEvent;
}

const MAX_AUDIENCES = 16;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export interface SetCheck {
  store: StoreHandle;
  keys: TransmitterKeys;
  /** Epoch milliseconds: the broker's clock. */
  now: number;
  clockToleranceSeconds: number;
}

/**
 * Verifies a pushed SET strictly, cheapest checks first: a signed compact JWS (no JWE, no
 * `alg: none`), `typ` `secevent+jwt`, an allowed asymmetric algorithm (EdDSA, ES256, RS256),
 * an `iss` registered in some tenant and an `aud` naming exactly one of its registrations;
 * then the signature with that transmitter's keys, `iat` within
 * {@link SIGNAL_LIMITS.maxAgeSeconds} (and not in the future), a `jti`, and exactly one known
 * CAEP event that conforms. The `jti` replay check is the caller's, in its transaction.
 *
 * @example
 * ```ts
 * const set = await verifySet(body, { store, keys: transmitterKeysOf(ctx), now, clockToleranceSeconds: 30 });
 * ```
 */
export async function verifySet(token: string, check: SetCheck): Promise<VerifiedSet> {
  if (token.split('.').length === 5)
    throw new SetRefused('invalid_request', 'encrypted SETs are not accepted');
  if (!COMPACT_JWS.test(token))
    throw new SetRefused('invalid_request', 'the body is not a signed SET (compact JWS)');
  checkHeader(token);
  const transmitter = await transmitterFor(check.store, token);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, check.keys.keysFor(transmitter), {
      algorithms: [...SET_ALGORITHMS],
      typ: SET_TYP,
      issuer: transmitter.issuer,
      audience: transmitter.audience,
      currentDate: new Date(check.now),
      clockTolerance: check.clockToleranceSeconds,
      maxTokenAge: SIGNAL_LIMITS.maxAgeSeconds,
      requiredClaims: ['iat', 'jti', 'events'],
    }));
  } catch (err) {
    throw refusalOf(err);
  }
  if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256)
    throw new SetRefused('invalid_request', 'jti must be a string of 1 to 256 characters');
  try {
    return { transmitter, jti: payload.jti, iat: payload.iat as number, read: readCaepEvent(payload) };
  } catch (err) {
    if (err instanceof NonConformingEvent) throw new SetRefused('invalid_request', err.message);
    throw err;
  }
}

function checkHeader(token: string): void {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch (err) {
    throw new SetRefused('invalid_request', 'the SET header is not valid JSON', { cause: err });
  }
  if (typeof header.alg !== 'string' || header.alg.toLowerCase() === 'none')
    throw new SetRefused('invalid_request', 'the SET is not signed');
  if (!(SET_ALGORITHMS as readonly string[]).includes(header.alg))
    throw new SetRefused(
      'invalid_key',
      `alg ${header.alg.slice(0, 32)} is not accepted; sign with ${SET_ALGORITHMS.join(', ')}`,
    );
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase().replace(/^application\//, '') : '';
  if (typ !== SET_TYP) throw new SetRefused('invalid_request', `typ must be ${SET_TYP}`);
}

/** The one registration the unverified `iss` and `aud` lead to; nothing read here is believed yet. */
async function transmitterFor(store: StoreHandle, token: string): Promise<SignalTransmitter> {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(token);
  } catch (err) {
    throw new SetRefused('invalid_request', 'the SET payload is not a JSON object', { cause: err });
  }
  if (typeof claims.iss !== 'string' || claims.iss.length === 0 || claims.iss.length > 512)
    throw new SetRefused('invalid_issuer', 'the SET names no usable issuer');
  const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
  if (aud.length === 0 || aud.length > MAX_AUDIENCES)
    throw new SetRefused('invalid_audience', `aud must name this broker (1 to ${MAX_AUDIENCES} values)`);
  const registered = await findTransmittersByIssuer(store, claims.iss);
  if (registered.length === 0)
    throw new SetRefused('invalid_issuer', 'no transmitter is registered for this issuer');
  const matching = registered.filter((t) => aud.includes(t.audience));
  if (matching.length !== 1)
    throw new SetRefused(
      'invalid_audience',
      matching.length === 0
        ? 'the SET is not addressed to this broker'
        : 'the SET is addressed to more than one registration of its issuer',
    );
  return matching[0] as SignalTransmitter;
}

/** jose's verdict as an RFC 8935 error code; anything not about the SET itself is rethrown. */
function refusalOf(err: unknown): unknown {
  const refuse = (code: SetErrorCode, description: string) =>
    new SetRefused(code, description, { cause: err });
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys)
    return refuse('invalid_key', "no single key of the transmitter's JWKS matches the SET");
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return refuse('invalid_key', "the signature does not verify with the transmitter's keys");
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported)
    return refuse('invalid_key', 'the signature algorithm or key type is not accepted');
  if (
    err instanceof joseErrors.JWKSTimeout ||
    err instanceof joseErrors.JWKSInvalid ||
    !(err instanceof joseErrors.JOSEError)
  )
    return refuse('authentication_failed', "the transmitter's keys could not be fetched; try again later");
  if (err instanceof joseErrors.JWTExpired)
    return refuse('invalid_request', `the SET is too old or expired (${err.claim})`);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return refuse('invalid_audience', 'the SET is not addressed to this broker');
    if (err.claim === 'iss') return refuse('invalid_issuer', 'the SET issuer does not match');
    return refuse('invalid_request', `the SET's ${err.claim} claim fails validation: ${err.reason}`);
  }
  return refuse('invalid_request', 'the SET is not a valid signed JWT');
}
