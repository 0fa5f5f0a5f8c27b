import {
  type CryptoKey,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  errors,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
  type ProtectedHeaderParameters,
} from 'jose';
import { normalizeHtuCached } from './htu.js';
import { type CheckedProofHeader, ProofKeyCache } from './proof-key-cache.js';
import { type ReplayCache, ReplayCacheFullError } from './replay-cache.js';
import { sha256Base64url, sha256Base64urlSync, utf8LongerThan } from './web.js';

/** The RFC 9449 error codes a DPoP check can end with. */
export type DpopErrorCode = 'invalid_dpop_proof' | 'use_dpop_nonce';

/**
 * A refused DPoP proof. `message` (also `description`) is safe to send to the client as
 * `error_description`: it never echoes the proof and stays within RFC 6749's character set.
 * Internal detail, such as jose's own error, is kept in `cause` for the log.
 */
export class DpopError extends Error {
  override readonly name = 'DpopError';
  readonly code: DpopErrorCode;

  constructor(code: DpopErrorCode, description: string, options?: { cause?: unknown }) {
    super(description, options);
    this.code = code;
  }

  get description(): string {
    return this.message;
  }
}

/** What the proof must match, taken from the request it arrived with. */
export interface DpopRequest {
  /** HTTP method of the request (upper-case token, compared case-sensitively with `htm`). */
  method: string;
  /** The request's URL as the public sees it (configured public base URL + path), never built from the Host header. */
  url: string;
  /** When a token is presented: the proof's `ath` must equal base64url(SHA-256(token)). */
  accessToken?: string;
  /**
   * base64url(SHA-256(accessToken)) when the caller has computed it already (a PEP hashes the
   * token once, as its verified-token cache key); it must be that of `accessToken`.
   */
  accessTokenHash?: string;
  /** When the token is bound: the RFC 7638 thumbprint the proof key must have (`cnf.jkt`). */
  expectedJkt?: string;
  /**
   * When the server requires a nonce: the current one (else `use_dpop_nonce`), or a function
   * given the proof's own (signature-checked) `nonce` claim that answers the nonce to expect —
   * so a server accepting several (this window's and the previous one's) reads the claim once.
   */
  nonce?: string | DpopNonceCheck;
}

/** Given a verified proof's `nonce` claim (any JSON value, or undefined), the nonce it must equal. */
export type DpopNonceCheck = (proofNonce: unknown) => string;

export interface DpopVerifierOptions {
  /** Epoch milliseconds; inject a manual clock in tests. */
  now: () => number;
  /** The proof's `iat` may lie up to this far in the past. Default 60. */
  iatWindowSeconds?: number;
  /**
   * Clock skew allowed for times ahead of ours: `iat` (and `nbf`) at most this far in the future,
   * `exp` at most this far past. Default 5; capped at the window. A proof dated ahead
   * would otherwise stay acceptable for window + skew, long after its signer produced it.
   */
  clockToleranceSeconds?: number;
  /** Accepted `alg` values, asymmetric only. Default {@link DPOP_DEFAULTS}.algorithms. */
  algorithms?: readonly string[];
  /** Remembers (jkt, jti) pairs for the window, so each proof is accepted once. Give it the same clock as `now`. */
  replayCache: ReplayCache;
  /** Larger proofs are refused before they are parsed. Default 8192. */
  maxProofBytes?: number;
}

export interface VerifiedDpopProof {
  /** RFC 7638 SHA-256 thumbprint of the proof key, to compare with or put in `cnf.jkt`. */
  jkt: string;
  jti: string;
  iat: number;
  htm: string;
  htu: string;
  publicJwk: JWK;
}

/** Defaults of {@link DpopVerifierOptions}, in one place. */
export const DPOP_DEFAULTS = Object.freeze({
  iatWindowSeconds: 60,
  clockToleranceSeconds: 5,
  algorithms: Object.freeze(['EdDSA', 'Ed25519', 'ES256', 'ES384', 'PS256']) as readonly string[],
  maxProofBytes: 8192,
  /** RFC 9449 §11.1: refuse unnecessarily large `jti` values. */
  maxJtiLength: 256,
});

// Registered asymmetric JWS algorithms that jose verifies. `none`, HS* and anything unknown can
// never be configured, whatever the caller passes.
const ASYMMETRIC_ALGORITHMS: ReadonlySet<string> = new Set([
  'EdDSA',
  'Ed25519',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
  'RS256',
  'RS384',
  'RS512',
]);
// JWK members that only a private (or symmetric) key carries.
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;
// Three base64url parts; the signature may be empty so that `alg: none` gets a precise refusal.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

interface VerifierConfig {
  clock: () => number;
  windowSeconds: number;
  toleranceSeconds: number;
  algorithms: readonly string[];
  replayCache: ReplayCache;
  maxProofBytes: number;
}

interface ProofClaims {
  jti: string;
  htm: string;
  htu: string;
  iat: number;
}

/**
 * Checks a DPoP proof as RFC 9449 §4.3 requires, and records its `jti` as used.
 *
 * The checks: one `DPoP` header holding one compact JWS; `typ` `dpop+jwt`; an allowed
 * asymmetric `alg`; a public `jwk` that verifies the signature; `jti`, `htm`, `htu` and `iat`
 * present; `htm` and `htu` match the request; `iat` within the window; `ath`, key binding and
 * `nonce` when the request asks for them. The `jti` is recorded last, so a proof refused for any
 * other reason does not use it up.
 *
 * @throws DpopError with `code` `invalid_dpop_proof`, or `use_dpop_nonce` when the nonce is
 *   absent or not the current one.
 *
 * @example
 * ```ts
 * const replayCache = new ReplayCache({ maxEntries: 100_000, now: Date.now });
 * const proof = await verifyDpopProof(req.headers.dpop, {
 *   method: req.method,
 *   url: new URL(req.url, publicBaseUrl).href,
 *   accessToken,
 *   expectedJkt: claims.cnf.jkt,
 * }, { now: Date.now, replayCache });
 * ```
 */
export async function verifyDpopProof(
  headerValue: string | string[] | undefined,
  request: DpopRequest,
  options: DpopVerifierOptions,
): Promise<VerifiedDpopProof> {
  return checkProof(headerValue, request, resolveOptions(options));
}

/** Checks proofs as {@link verifyDpopProof} does, with options resolved once. */
export type DpopProofVerifier = (
  headerValue: string | string[] | undefined,
  request: DpopRequest,
) => Promise<VerifiedDpopProof>;

/**
 * A {@link DpopProofVerifier} for these options, for a server checking a proof per request: the
 * options are validated here, once, instead of on every proof.
 *
 * @throws TypeError when an option is out of range.
 */
export function createDpopProofVerifier(options: DpopVerifierOptions): DpopProofVerifier {
  const config = resolveOptions(options);
  return (headerValue, request) => checkProof(headerValue, request, config);
}

async function checkProof(
  headerValue: string | string[] | undefined,
  request: DpopRequest,
  config: VerifierConfig,
): Promise<VerifiedDpopProof> {
  const now = config.clock();
  const proof = singleProof(headerValue, config.maxProofBytes);
  const { alg, jwk, key, jkt } = cachedHeader(proof, config.algorithms) ?? (await loadHeader(proof, config));
  const payload = await verifySignature(proof, key, alg, config, now);
  const claims = readClaims(payload);
  checkMethod(claims.htm, request.method);
  checkUri(claims.htu, request.url);
  checkFreshness(claims.iat, config, now);
  if (request.accessToken !== undefined) {
    const expected =
      request.accessTokenHash ??
      sha256Base64urlSync(request.accessToken) ??
      (await dpopAth(request.accessToken));
    checkAccessTokenHash(payload.ath, expected);
  }
  if (request.expectedJkt !== undefined && jkt !== request.expectedJkt) {
    throw invalid('the proof key is not the key the access token is bound to');
  }
  if (request.nonce !== undefined) {
    const expected = typeof request.nonce === 'function' ? request.nonce(payload.nonce) : request.nonce;
    checkNonce(payload.nonce, expected);
  }
  // The proof stays acceptable until iat + window (iat is at most the tolerance ahead), so its
  // jti must be remembered that long.
  rememberJti(
    config.replayCache,
    replayKeyOf(jkt, claims.jti) ?? (await sha256Base64url(`${jkt}.${claims.jti}`)),
    (claims.iat + config.windowSeconds) * 1000,
  );
  return { jkt, jti: claims.jti, iat: claims.iat, htm: claims.htm, htu: claims.htu, publicJwk: jwk };
}

/**
 * The `ath` value for an access token: base64url(SHA-256(ASCII bytes of the token)).
 * Access tokens are ASCII (RFC 6750 `b64token`), so their UTF-8 bytes are their ASCII bytes.
 *
 * @example
 * ```ts
 * await dpopAth('Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU'); // 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo'
 * ```
 */
export async function dpopAth(accessToken: string): Promise<string> {
  return sha256Base64url(accessToken);
}

function invalid(description: string, cause?: unknown): DpopError {
  return new DpopError('invalid_dpop_proof', description, cause === undefined ? undefined : { cause });
}

// Misconfiguration is a programming error (TypeError), never a client-facing refusal.
function resolveOptions(options: DpopVerifierOptions): VerifierConfig {
  const windowSeconds = options.iatWindowSeconds ?? DPOP_DEFAULTS.iatWindowSeconds;
  if (!Number.isFinite(windowSeconds) || windowSeconds <= 0) {
    throw new TypeError('DPoP iatWindowSeconds must be a positive number');
  }
  const tolerance = options.clockToleranceSeconds ?? DPOP_DEFAULTS.clockToleranceSeconds;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new TypeError('DPoP clockToleranceSeconds must be a non-negative number');
  }
  // More skew than the window would make the future side wider than the past one.
  const toleranceSeconds = Math.min(tolerance, windowSeconds);
  const algorithms = options.algorithms ?? DPOP_DEFAULTS.algorithms;
  if (algorithms.length === 0) throw new TypeError('DPoP algorithms must not be empty');
  for (const alg of algorithms) {
    if (!ASYMMETRIC_ALGORITHMS.has(alg)) {
      throw new TypeError(`DPoP algorithm ${alg} is not a supported asymmetric JWS algorithm`);
    }
  }
  const maxProofBytes = options.maxProofBytes ?? DPOP_DEFAULTS.maxProofBytes;
  if (!Number.isSafeInteger(maxProofBytes) || maxProofBytes <= 0) {
    throw new TypeError('DPoP maxProofBytes must be a positive integer');
  }
  if (typeof options.now !== 'function') throw new TypeError('DPoP now must be a function');
  return {
    clock: options.now,
    windowSeconds,
    toleranceSeconds,
    algorithms,
    replayCache: options.replayCache,
    maxProofBytes,
  };
}

function singleProof(headerValue: string | string[] | undefined, maxProofBytes: number): string {
  const values = headerValue === undefined ? [] : Array.isArray(headerValue) ? headerValue : [headerValue];
  if (values.length > 1) throw invalid('more than one DPoP header');
  const proof = values[0];
  if (proof === undefined || proof === '') throw invalid('the DPoP header is missing');
  if (utf8LongerThan(proof, maxProofBytes)) {
    throw invalid(`the DPoP proof is larger than ${maxProofBytes} bytes`);
  }
  // Node joins repeated unknown headers with ", "; a JWS never contains a comma.
  if (proof.includes(',')) throw invalid('more than one DPoP header');
  if (!COMPACT_JWS.test(proof)) throw invalid('the DPoP proof is not a compact JWS of three base64url parts');
  return proof;
}

function readHeader(proof: string, algorithms: readonly string[]): { alg: string; jwk: JWK } {
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(proof);
  } catch (cause) {
    throw invalid('the DPoP proof header is not base64url-encoded JSON', cause);
  }
  // Exact value, as RFC 9449 §4.3 step 4 says: a JWT typed for any other use is refused.
  if (header.typ !== 'dpop+jwt') throw invalid('the typ header must be dpop+jwt');
  const { alg, jwk } = header;
  if (typeof alg !== 'string' || !algorithms.includes(alg)) {
    throw invalid('the alg header is not an accepted asymmetric algorithm');
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
    throw invalid('the jwk header must be a JSON object holding the public key');
  }
  const privateMember = PRIVATE_JWK_MEMBERS.find((member) => Object.hasOwn(jwk, member));
  if (privateMember !== undefined) {
    throw invalid(`the jwk header must not contain a private key (member ${privateMember})`);
  }
  return { alg, jwk };
}

// Checked headers of recent proofs (see proof-key-cache.ts). An RSA key's header is under 1 KB.
const PROOF_HEADERS = new ProofKeyCache(10_000, 2048);

/** The proof's header from the cache, when it was checked before; the allow-list is this verifier's. */
function cachedHeader(proof: string, algorithms: readonly string[]): CheckedProofHeader | undefined {
  const entry = PROOF_HEADERS.get(proof.slice(0, proof.indexOf('.')));
  if (entry === undefined) return undefined;
  if (!algorithms.includes(entry.alg))
    throw invalid('the alg header is not an accepted asymmetric algorithm');
  return entry;
}

/** Decodes and checks a header not seen lately, imports its key and computes its thumbprint. */
async function loadHeader(proof: string, config: VerifierConfig): Promise<CheckedProofHeader> {
  const { alg, jwk } = readHeader(proof, config.algorithms);
  const key = await importProofKey(jwk, alg);
  const entry = { alg, jwk: deepFreeze(jwk), key, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
  PROOF_HEADERS.set(proof.slice(0, proof.indexOf('.')), entry);
  return entry;
}

// The header's jwk is shared by every proof made with it: nobody may edit it.
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}

async function importProofKey(jwk: JWK, alg: string): Promise<CryptoKey> {
  if (jwk.alg !== undefined && jwk.alg !== alg)
    throw invalid('the jwk header alg differs from the alg header');
  if (jwk.use !== undefined && jwk.use !== 'sig') throw invalid('the jwk header use must be sig');
  let key: CryptoKey | Uint8Array;
  try {
    key = await importJWK(jwk, alg);
  } catch (cause) {
    throw invalid('the jwk header is not a public key for the alg header', cause);
  }
  if (key instanceof Uint8Array || key.type !== 'public') {
    throw invalid('the jwk header is not a public key for the alg header');
  }
  return key;
}

async function verifySignature(
  proof: string,
  key: CryptoKey,
  alg: string,
  config: VerifierConfig,
  now: number,
): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(proof, key, {
      algorithms: [alg],
      typ: 'dpop+jwt',
      currentDate: new Date(now),
      // An optional exp or nbf in the proof gets the clock-skew allowance, not the whole window.
      clockTolerance: config.toleranceSeconds,
    });
    return payload;
  } catch (cause) {
    throw invalid(describeJoseFailure(cause), cause);
  }
}

function describeJoseFailure(error: unknown): string {
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return 'the signature does not verify with the jwk header key';
  }
  if (error instanceof errors.JWTExpired) return 'the DPoP proof has expired (exp)';
  if (error instanceof errors.JWTClaimValidationFailed) return `claim ${error.claim} is invalid`;
  if (error instanceof errors.JWTInvalid) return 'the DPoP proof payload is not a JSON object';
  return 'the DPoP proof is not a valid JWS';
}

function readClaims(payload: JWTPayload): ProofClaims {
  const { jti, htm, htu, iat } = payload;
  if (typeof jti !== 'string' || jti === '') throw invalid('claim jti is missing or not a string');
  if (jti.length > DPOP_DEFAULTS.maxJtiLength) {
    throw invalid(`claim jti is longer than ${DPOP_DEFAULTS.maxJtiLength} characters`);
  }
  if (typeof htm !== 'string' || htm === '') throw invalid('claim htm is missing or not a string');
  if (typeof htu !== 'string' || htu === '') throw invalid('claim htu is missing or not a string');
  if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalid('claim iat is missing or not a number');
  return { jti, htm, htu, iat };
}

// Methods are case-sensitive tokens (RFC 9110 §9.1), so `post` is not `POST`.
function checkMethod(htm: string, method: string): void {
  if (htm !== method) throw invalid('claim htm does not match the request method');
}

function checkUri(htu: string, requestUrl: string): void {
  const claimed = normalizeHtuCached(htu);
  if (claimed === undefined) throw invalid('claim htu is not an absolute http or https URI');
  const actual = normalizeHtuCached(requestUrl);
  if (actual === undefined) throw invalid('the request URL cannot be compared with claim htu');
  if (claimed !== actual) throw invalid('claim htu does not match the request URL');
}

function checkFreshness(iat: number, config: VerifierConfig, now: number): void {
  const ageSeconds = now / 1000 - iat;
  if (ageSeconds > config.windowSeconds) {
    throw invalid(`claim iat is more than ${config.windowSeconds} s in the past`);
  }
  // Only clock skew excuses a proof dated ahead: a window-wide allowance would let a proof made
  // now be dated a minute ahead and so stay replayable (at another PEP) twice as long.
  if (ageSeconds < -config.toleranceSeconds) {
    throw invalid(`claim iat is more than ${config.toleranceSeconds} s in the future`);
  }
}

function checkAccessTokenHash(ath: unknown, expected: string): void {
  if (ath === undefined) throw invalid('claim ath is required when an access token is presented');
  if (ath !== expected) throw invalid('claim ath does not match the access token');
}

function checkNonce(nonce: unknown, expected: string): void {
  if (nonce === undefined) {
    throw new DpopError('use_dpop_nonce', 'a DPoP nonce is required: use the one in the DPoP-Nonce header');
  }
  if (nonce !== expected) throw new DpopError('use_dpop_nonce', 'claim nonce is not the current DPoP nonce');
}

/**
 * The replay-cache key of (jkt, jti) when it can be had at once: the pair itself for a short
 * `jti` (a UUID, as clients send), else its SHA-256 where the runtime hashes synchronously.
 * The two forms cannot meet: a digest has no '.'. `undefined`: hash it asynchronously.
 */
function replayKeyOf(jkt: string, jti: string): string | undefined {
  const pair = `${jkt}.${jti}`;
  return jti.length <= SHORT_JTI ? pair : sha256Base64urlSync(pair);
}

// A jti this short is kept as it is: a digest would save next to nothing and cost a hash.
const SHORT_JTI = 64;

// Keyed by (jkt, jti): the signature covers both, so any replay of a proof carries the same pair,
// and another key cannot use up an honest client's jti values. RFC 9449 §11.1 asks to store only
// a hash of large values: a long jti is kept as a fixed-size digest (see replayKeyOf).
function rememberJti(cache: ReplayCache, key: string, expiresAt: number): void {
  let firstUse: boolean;
  try {
    firstUse = cache.checkAndRemember(key, expiresAt);
  } catch (cause) {
    if (cause instanceof ReplayCacheFullError) {
      throw invalid('the replay cache is full: retry with a new proof shortly', cause);
    }
    throw cause;
  }
  if (!firstUse) throw invalid('claim jti has already been used: a DPoP proof is single-use');
}
