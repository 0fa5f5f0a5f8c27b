import { createHash } from 'node:crypto';
import type { ErrorCode } from '@tether/protocol';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  compactVerify,
  decodeProtectedHeader,
  errors,
  type JWK,
  type ProtectedHeaderParameters,
} from 'jose';
import { DPOP_DEFAULTS, DpopError, type VerifiedDpopProof, verifyDpopProof } from './dpop.js';
import type { KeySource } from './jwks.js';
import type { ReplayCache } from './replay-cache.js';

/** Why a request's access token was refused; each is a code of the protocol's catalogue, HTTP 401. */
export type TokenRefusalCode = Extract<ErrorCode, 'invalid_token' | 'invalid_dpop_proof' | 'use_dpop_nonce'>;

/**
 * A refused request. Answer it with `status` and a `WWW-Authenticate: <wwwAuthenticate>` header.
 * `message` (also `description`) is safe to send to the client: it never echoes the token or
 * the proof, and stays within RFC 6749's `error_description` character set. Internal detail
 * (jose's error, the key source's failure) is kept in `cause`, for the log.
 */
export class TokenRefused extends Error {
  override readonly name = 'TokenRefused';
  readonly code: TokenRefusalCode;
  readonly status = 401 as const;
  /** e.g. `DPoP error="invalid_token", error_description="the token has expired", algs="EdDSA ES256"`. */
  readonly wwwAuthenticate: string;

  constructor(
    code: TokenRefusalCode,
    description: string,
    options?: {
      cause?: unknown;
      /** A challenge without error code, for a request that sent no credentials (RFC 6750 §3.1). */
      bare?: boolean;
    },
  ) {
    super(
      sanitizeDescription(description),
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    const algs = `algs="${DPOP_DEFAULTS.algorithms.join(' ')}"`;
    this.wwwAuthenticate = options?.bare
      ? `DPoP ${algs}`
      : `DPoP error="${code}", error_description="${this.message}", ${algs}`;
  }

  get description(): string {
    return this.message;
  }
}

/** One RFC 9396 `authorization_details` entry as Tether issues it. */
export interface TetherPrivilegeDetail {
  type: 'tether_privilege';
  privilege: string;
  actions: string[];
  resources: string[];
}

/** The claims of a Tether access token (RFC 9068 profile), as verified. The object is frozen. */
export interface TetherAccessClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  /** Present only when the token carries it. */
  nbf?: number;
  jti: string;
  client_id: string;
  tenant: string;
  sid: string;
  cnf: { jkt: string };
  ticket?: string;
  session_exp: number;
  status: { status_list: { idx: number; uri: string } };
  authorization_details: TetherPrivilegeDetail[];
}

export interface AccessTokenVerifierOptions {
  /** The exact `iss` of accepted tokens. */
  issuer: string;
  /** This PEP's audience; it must be (one of) the token's `aud`. */
  audience: string;
  /**
   * The tenant this PEP enforces for: the token's `tenant` must equal it. Required: every
   * tenant's tokens share one issuer and key, and two tenants' privileges may name the same
   * audience, so only this check keeps tenant A's tokens out of tenant B's services.
   */
  tenant: string;
  /** This PEP's origin and base path as the public sees it; `htu` must be this + the request path. */
  publicBaseUrl: string;
  /** The issuer's signing keys, from `jwks.ts`. */
  keys: KeySource;
  /** Epoch milliseconds; inject a manual clock in tests. */
  now: () => number;
  /** Clock skew allowed on `exp`, `nbf`, `iat` and `session_exp`. Default 5; more than 5 is refused. */
  leewaySeconds?: number;
  /** Accepted token `alg` values. Default `['EdDSA']`; only `EdDSA`, `Ed25519` and `ES256` may be listed. */
  algorithms?: string[];
  /** Remembers DPoP proof `jti`s, so each proof is accepted once. Give it the same clock as `now`. */
  replayCache: ReplayCache;
  /** A proof's `iat` must lie within ±this of now. Default 60. */
  dpopIatWindowSeconds?: number;
  /** Verified tokens remembered (by SHA-256 of their text, until `exp`), least recently used dropped first. Default 10 000; 0 disables. */
  verifiedTokenCacheSize?: number;
}

/** What the verifier needs from a request, taken as received. */
export interface AccessTokenRequest {
  /** HTTP method, compared with the proof's `htm`. */
  method: string;
  /** Path and query as received (origin-form request target), e.g. `/v1/things?page=2`. */
  path: string;
  authorization?: string | string[];
  dpop?: string | string[];
  /** When this PEP requires server-issued nonces: the current one (else `use_dpop_nonce`). */
  nonce?: string;
}

export interface VerifiedAccess {
  claims: TetherAccessClaims;
  proof: VerifiedDpopProof;
}

export interface AccessTokenVerifier {
  /** @throws TokenRefused when the request must be refused (401). */
  verify(request: AccessTokenRequest): Promise<VerifiedAccess>;
}

/** Defaults and limits of {@link AccessTokenVerifierOptions}, in one place. */
export const ACCESS_TOKEN_DEFAULTS = Object.freeze({
  leewaySeconds: 5,
  /** RFC 9068 tokens live minutes; more skew than this would only hide a broken clock. */
  maxLeewaySeconds: 5,
  algorithms: Object.freeze(['EdDSA']) as readonly string[],
  dpopIatWindowSeconds: DPOP_DEFAULTS.iatWindowSeconds,
  verifiedTokenCacheSize: 10_000,
  /** A larger token is refused before it is parsed. */
  maxTokenBytes: 8192,
});

// The algorithms keys from jwks.ts can verify. `none`, HS* and all else can never be configured.
const SUPPORTED_ALGORITHMS: ReadonlySet<string> = new Set(['EdDSA', 'Ed25519', 'ES256']);
const OPTION_NAMES: ReadonlySet<string> = new Set([
  'issuer',
  'audience',
  'tenant',
  'publicBaseUrl',
  'keys',
  'now',
  'leewaySeconds',
  'algorithms',
  'replayCache',
  'dpopIatWindowSeconds',
  'verifiedTokenCacheSize',
]);
// Three base64url parts; the signature may be empty so that `alg: none` gets a precise refusal.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
// RFC 9110 §11.1 credentials: auth-scheme [ 1*SP token68 ].
const CREDENTIALS = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?: +(.*))?$/;
// RFC 7638 SHA-256 thumbprint, base64url without padding.
const JKT = /^[A-Za-z0-9_-]{43}$/;

interface VerifierConfig {
  issuer: string;
  audience: string;
  tenant: string;
  publicBaseUrl: string;
  keys: KeySource;
  now: () => number;
  leewaySeconds: number;
  algorithms: readonly string[];
  replayCache: ReplayCache;
  dpopIatWindowSeconds: number;
}

/**
 * Creates the verifier a PEP runs on every request: a DPoP-bound Tether access token
 * (`Authorization: DPoP <token>`) and its DPoP proof, checked locally.
 *
 * The checks, in order, each refusing with its own description: one `Authorization` header;
 * scheme `DPoP`; a compact JWS of at most 8 KB; `typ` `at+jwt`; an allowed `alg`; a `kid`
 * the key source knows; the signature; `iss`; `aud`; `exp`, `nbf`, `iat` (with the leeway);
 * the Tether claims present and well-typed; `session_exp` not passed and not before `exp`;
 * `tenant`; then the DPoP proof (RFC 9449 §4.3 and §7.1: `htm`, `htu`, `iat`, `ath`, single-use
 * `jti`, and the proof key must be the token's `cnf.jkt`).
 *
 * A token that passed is remembered by SHA-256 of its text until its `exp`: presenting it again
 * costs one proof verification, but its times are rechecked and its proof fully checked on
 * every request. A signing key retired from the JWKS therefore stops new tokens at once and
 * cached ones at their `exp`; ending sessions sooner is the revocation mirror's job.
 *
 * Refusal codes: `invalid_token` for the token (and for a proof made with a key other than the
 * one the token is bound to: "Invalid DPoP key binding", as in RFC 9449 §7.1), otherwise
 * `invalid_dpop_proof` / `use_dpop_nonce` as the proof check reports. A request without any
 * `Authorization` header gets a bare `DPoP algs=…` challenge (RFC 6750 §3.1), code `invalid_token`.
 *
 * @throws TypeError at creation when an option is unknown, missing or out of range
 *   (`leewaySeconds` above 5 is refused, not clamped).
 *
 * @example
 * ```ts
 * const verifier = createAccessTokenVerifier({
 *   issuer: 'https://broker.example', audience: 'https://api.example', publicBaseUrl: 'https://api.example',
 *   keys: remoteKeySource('https://broker.example/.well-known/jwks.json', { now: Date.now }),
 *   now: Date.now, replayCache: new ReplayCache({ maxEntries: 100_000, now: Date.now }),
 * });
 * try {
 *   const { claims } = await verifier.verify({ method: req.method, path: req.url, authorization: req.headers.authorization, dpop: req.headers.dpop });
 * } catch (e) {
 *   if (e instanceof TokenRefused) reply.code(e.status).header('www-authenticate', e.wwwAuthenticate);
 * }
 * ```
 */
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerifier {
  const config = resolveOptions(options);
  const cache = new VerifiedTokenCache(
    options.verifiedTokenCacheSize ?? ACCESS_TOKEN_DEFAULTS.verifiedTokenCacheSize,
  );

  return {
    async verify(request: AccessTokenRequest): Promise<VerifiedAccess> {
      const nowMs = config.now();
      const nowS = nowMs / 1000;
      const token = readCredentials(request.authorization);
      const digest = createHash('sha256').update(token, 'utf8').digest('base64url');
      let claims = cache.get(digest, nowMs);
      const cached = claims !== undefined;
      if (claims === undefined) {
        claims = await verifyToken(token, config, nowS);
      } else {
        // The same time checks, in the same order, as a fresh token gets.
        checkLifetime(claims, nowS, config.leewaySeconds);
        checkSession(claims, nowS, config.leewaySeconds);
      }
      const proof = await verifyProof(request, token, claims, config);
      if (!cached) cache.set(digest, claims, (claims.exp + config.leewaySeconds) * 1000);
      return { claims, proof };
    },
  };
}

function refused(description: string, cause?: unknown): TokenRefused {
  return new TokenRefused('invalid_token', description, cause === undefined ? undefined : { cause });
}

// RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E; it sits inside a quoted string.
function sanitizeDescription(description: string): string {
  return description.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '?');
}

// Misconfiguration is a programming error (TypeError), never a client-facing refusal.
function resolveOptions(options: AccessTokenVerifierOptions): VerifierConfig {
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) throw new TypeError(`access-token verifier: unknown option ${name}`);
  }
  for (const name of ['issuer', 'audience'] as const) {
    if (typeof options[name] !== 'string' || options[name] === '') {
      throw new TypeError(`access-token verifier: ${name} must be a non-empty string`);
    }
  }
  if (typeof options.tenant !== 'string' || options.tenant === '') {
    throw new TypeError('access-token verifier: tenant is required (a non-empty string)');
  }
  if (typeof options.keys?.getKey !== 'function') {
    throw new TypeError('access-token verifier: keys must be a KeySource');
  }
  if (typeof options.now !== 'function') throw new TypeError('access-token verifier: now must be a function');
  if (typeof options.replayCache?.checkAndRemember !== 'function') {
    throw new TypeError('access-token verifier: replayCache must be a ReplayCache');
  }
  const leewaySeconds = options.leewaySeconds ?? ACCESS_TOKEN_DEFAULTS.leewaySeconds;
  if (
    !Number.isFinite(leewaySeconds) ||
    leewaySeconds < 0 ||
    leewaySeconds > ACCESS_TOKEN_DEFAULTS.maxLeewaySeconds
  ) {
    throw new TypeError(
      `access-token verifier: leewaySeconds must be between 0 and ${ACCESS_TOKEN_DEFAULTS.maxLeewaySeconds}`,
    );
  }
  const algorithms = options.algorithms ?? ACCESS_TOKEN_DEFAULTS.algorithms;
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    throw new TypeError('access-token verifier: algorithms must be a non-empty array');
  }
  for (const alg of algorithms) {
    if (!SUPPORTED_ALGORITHMS.has(alg)) {
      throw new TypeError(`access-token verifier: algorithm ${alg} is not one of EdDSA, Ed25519, ES256`);
    }
  }
  const dpopIatWindowSeconds = options.dpopIatWindowSeconds ?? ACCESS_TOKEN_DEFAULTS.dpopIatWindowSeconds;
  if (!Number.isFinite(dpopIatWindowSeconds) || dpopIatWindowSeconds <= 0) {
    throw new TypeError('access-token verifier: dpopIatWindowSeconds must be positive');
  }
  const cacheSize = options.verifiedTokenCacheSize ?? ACCESS_TOKEN_DEFAULTS.verifiedTokenCacheSize;
  if (!Number.isSafeInteger(cacheSize) || cacheSize < 0) {
    throw new TypeError('access-token verifier: verifiedTokenCacheSize must be a non-negative integer');
  }
  return {
    issuer: options.issuer,
    audience: options.audience,
    tenant: options.tenant,
    publicBaseUrl: resolvePublicBaseUrl(options.publicBaseUrl),
    keys: options.keys,
    now: options.now,
    leewaySeconds,
    algorithms: [...algorithms],
    replayCache: options.replayCache,
    dpopIatWindowSeconds,
  };
}

// The request path always starts with '/', so a trailing '/' on the base would double it.
function resolvePublicBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError('access-token verifier: publicBaseUrl must be an absolute URL');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.search !== '' || url.hash !== '') {
    throw new TypeError(
      'access-token verifier: publicBaseUrl must be an http(s) URL without query or fragment',
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new TypeError('access-token verifier: publicBaseUrl must not carry credentials');
  }
  return url.href.replace(/\/+$/, '');
}

// --- Authorization header -------------------------------------------------------------------

function readCredentials(header: string | string[] | undefined): string {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  if (values.length > 1) throw refused('more than one Authorization header');
  const value = values[0];
  if (value === undefined || value.trim() === '') {
    throw new TokenRefused('invalid_token', 'the request has no Authorization header: send DPoP <token>', {
      bare: true,
    });
  }
  const match = CREDENTIALS.exec(value.trim());
  if (match === null) throw refused('the Authorization header is not of the form: DPoP <token>');
  const scheme = match[1]!.toLowerCase();
  if (scheme === 'bearer') {
    throw refused('DPoP-bound tokens must be sent with the DPoP authorization scheme, not Bearer');
  }
  if (scheme !== 'dpop') throw refused('the Authorization scheme must be DPoP');
  const token = match[2]?.trim() ?? '';
  if (token === '') throw refused('the Authorization header carries no token');
  if (Buffer.byteLength(token, 'utf8') > ACCESS_TOKEN_DEFAULTS.maxTokenBytes) {
    throw refused(`the token is larger than ${ACCESS_TOKEN_DEFAULTS.maxTokenBytes} bytes`);
  }
  if (!COMPACT_JWS.test(token)) throw refused('the token is not a compact JWS of three base64url parts');
  return token;
}

// --- token --------------------------------------------------------------------------------

async function verifyToken(token: string, config: VerifierConfig, nowS: number): Promise<TetherAccessClaims> {
  const { alg, kid } = readHeader(token, config.algorithms);
  const key = await findKey(config.keys, kid, alg);
  const payload = await verifySignature(token, key, alg);
  checkIssuer(payload.iss, config.issuer);
  checkAudience(payload.aud, config.audience);
  checkLifetime(payload, nowS, config.leewaySeconds);
  const claims = readClaims(payload);
  checkSession(claims, nowS, config.leewaySeconds);
  if (claims.tenant !== config.tenant) {
    throw refused('the token belongs to another tenant');
  }
  return claims;
}

function readHeader(token: string, algorithms: readonly string[]): { alg: string; kid: string } {
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch (cause) {
    throw refused('the token header is not base64url-encoded JSON', cause);
  }
  if (!isAccessTokenTyp(header.typ)) throw refused('the token typ header must be at+jwt (RFC 9068)');
  const { alg, kid } = header;
  if (alg === 'none') throw refused('unsigned tokens (alg none) are refused');
  if (typeof alg === 'string' && /^HS\d+$/.test(alg)) {
    throw refused('symmetric token algorithms (HS256, HS384, HS512) are refused');
  }
  if (typeof alg !== 'string' || !algorithms.includes(alg)) {
    throw refused(`the token alg is not an accepted algorithm (${algorithms.join(', ')})`);
  }
  if (typeof kid !== 'string' || kid === '') throw refused('the token header has no kid');
  return { alg, kid };
}

// RFC 9068 §4: "at+jwt" or "application/at+jwt"; media types compare case-insensitively.
function isAccessTokenTyp(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return lower === 'at+jwt' || lower === 'application/at+jwt';
}

async function findKey(keys: KeySource, kid: string, alg: string): Promise<CryptoKey> {
  let key: CryptoKey | undefined;
  try {
    key = await keys.getKey(kid);
  } catch (cause) {
    // Fail closed: without the issuer's keys, no token can be trusted.
    throw refused('the issuer signing keys are unavailable, so the token cannot be verified', cause);
  }
  if (key === undefined) throw refused('the token kid is not a signing key of the issuer');
  if (!keyFitsAlg(key, alg)) throw refused('the signing key named by kid does not fit the token alg');
  return key;
}

function keyFitsAlg(key: CryptoKey, alg: string): boolean {
  const algorithm = key.algorithm as { name: string; namedCurve?: string };
  if (alg === 'EdDSA' || alg === 'Ed25519') return algorithm.name === 'Ed25519';
  if (alg === 'ES256') return algorithm.name === 'ECDSA' && algorithm.namedCurve === 'P-256';
  return false;
}

async function verifySignature(token: string, key: CryptoKey, alg: string): Promise<Record<string, unknown>> {
  let bytes: Uint8Array;
  try {
    ({ payload: bytes } = await compactVerify(token, key, { algorithms: [alg] }));
  } catch (cause) {
    if (cause instanceof errors.JWSSignatureVerificationFailed) {
      throw refused('the token signature does not verify', cause);
    }
    throw refused('the token is not a valid JWS', cause);
  }
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw refused('the token payload is not a JSON object', cause);
  }
  if (!isObject(payload)) throw refused('the token payload is not a JSON object');
  return payload;
}

function checkIssuer(iss: unknown, issuer: string): void {
  if (iss !== issuer) throw refused('claim iss is not the expected issuer');
}

function checkAudience(aud: unknown, audience: string): void {
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.includes(audience)) throw refused('claim aud does not include this resource server');
}

/** `exp`, `nbf` and `iat`, each with the leeway. */
function checkLifetime(
  claims: { exp?: unknown; nbf?: unknown; iat?: unknown },
  nowS: number,
  leeway: number,
): void {
  const { exp, nbf, iat } = claims;
  if (!isNumericDate(exp)) throw refused('claim exp is missing or not a number');
  // RFC 7519 §4.1.4: the token is refused on or after exp.
  if (nowS >= exp + leeway) throw refused('the token has expired (exp)');
  if (nbf !== undefined) {
    if (!isNumericDate(nbf)) throw refused('claim nbf is not a number');
    if (nowS + leeway < nbf) throw refused('the token is not valid yet (nbf)');
  }
  if (!isNumericDate(iat)) throw refused('claim iat is missing or not a number');
  if (iat > nowS + leeway) throw refused('claim iat is in the future');
}

/** The session the token belongs to must still be running, and the token must not outlive it. */
function checkSession(claims: TetherAccessClaims, nowS: number, leeway: number): void {
  if (nowS >= claims.session_exp + leeway) throw refused('the session has ended (session_exp has passed)');
  if (claims.exp > claims.session_exp) throw refused('claim exp is later than session_exp');
}

/** The Tether claims, present and well-typed, copied into a frozen object. */
function readClaims(payload: Record<string, unknown>): TetherAccessClaims {
  const claims: TetherAccessClaims = {
    iss: payload.iss as string,
    sub: requiredString(payload, 'sub'),
    aud: copyAudience(payload.aud),
    exp: payload.exp as number,
    iat: payload.iat as number,
    jti: requiredString(payload, 'jti'),
    client_id: requiredString(payload, 'client_id'),
    tenant: requiredString(payload, 'tenant'),
    sid: requiredString(payload, 'sid'),
    cnf: { jkt: readJkt(payload.cnf) },
    session_exp: readSessionExp(payload.session_exp),
    status: readStatus(payload.status),
    authorization_details: readAuthorizationDetails(payload.authorization_details),
  };
  if (payload.nbf !== undefined) claims.nbf = payload.nbf as number;
  if (payload.ticket !== undefined) {
    if (typeof payload.ticket !== 'string') throw refused('claim ticket is not a string');
    claims.ticket = payload.ticket;
  }
  return deepFreeze(claims);
}

function requiredString(payload: Record<string, unknown>, name: string): string {
  const value = payload[name];
  if (typeof value !== 'string' || value === '') throw refused(`claim ${name} is missing or not a string`);
  return value;
}

function copyAudience(aud: unknown): string | string[] {
  // checkAudience already found the audience in it; keep only strings.
  return typeof aud === 'string' ? aud : (aud as unknown[]).filter((a): a is string => typeof a === 'string');
}

function readJkt(cnf: unknown): string {
  if (!isObject(cnf) || typeof cnf['jkt'] !== 'string' || !JKT.test(cnf['jkt'])) {
    throw refused('claim cnf.jkt is missing or not a SHA-256 JWK thumbprint: the token is not DPoP-bound');
  }
  return cnf['jkt'];
}

function readSessionExp(value: unknown): number {
  if (!isNumericDate(value)) throw refused('claim session_exp is missing or not a number');
  return value;
}

function readStatus(status: unknown): TetherAccessClaims['status'] {
  const list = isObject(status) ? status['status_list'] : undefined;
  if (!isObject(list)) throw refused('claim status.status_list is missing');
  const { idx, uri } = list;
  if (!Number.isSafeInteger(idx) || (idx as number) < 0) {
    throw refused('claim status.status_list.idx is not a non-negative integer');
  }
  if (typeof uri !== 'string' || uri === '') throw refused('claim status.status_list.uri is not a string');
  return { status_list: { idx: idx as number, uri } };
}

function readAuthorizationDetails(value: unknown): TetherPrivilegeDetail[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw refused('claim authorization_details is missing or empty');
  }
  return value.map((entry: unknown) => {
    if (!isObject(entry) || entry['type'] !== 'tether_privilege') {
      throw refused('every authorization_details entry must be of type tether_privilege');
    }
    const { privilege, actions, resources } = entry;
    if (typeof privilege !== 'string' || privilege === '') {
      throw refused('an authorization_details entry has no privilege string');
    }
    if (!isStringArray(actions))
      throw refused('an authorization_details entry has actions that are not strings');
    if (!isStringArray(resources)) {
      throw refused('an authorization_details entry has resources that are not strings');
    }
    return { type: 'tether_privilege', privilege, actions: [...actions], resources: [...resources] };
  });
}

// --- DPoP proof -----------------------------------------------------------------------------

async function verifyProof(
  request: AccessTokenRequest,
  token: string,
  claims: TetherAccessClaims,
  config: VerifierConfig,
): Promise<VerifiedDpopProof> {
  // Anything else appended to the base URL could change its host ("api.example.com.evil.example").
  if (typeof request.path !== 'string' || !request.path.startsWith('/')) {
    throw new TokenRefused('invalid_dpop_proof', 'the request target must be a path beginning with /');
  }
  try {
    return await verifyDpopProof(
      request.dpop,
      {
        method: request.method,
        url: config.publicBaseUrl + request.path,
        accessToken: token,
        expectedJkt: claims.cnf.jkt,
        ...(request.nonce === undefined ? {} : { nonce: request.nonce }),
      },
      { now: config.now, replayCache: config.replayCache, iatWindowSeconds: config.dpopIatWindowSeconds },
    );
  } catch (error) {
    if (!(error instanceof DpopError)) throw error;
    // verifyDpopProof has enforced the binding; this only chooses how to report the refusal. A
    // proof that failed and was made with another key than cnf.jkt is a token problem (§7.1).
    if (error.code === 'invalid_dpop_proof' && (await proofKeyIsNot(request.dpop, claims.cnf.jkt))) {
      throw refused('Invalid DPoP key binding: the proof key is not the key the token is bound to', error);
    }
    throw new TokenRefused(error.code, error.description, { cause: error });
  }
}

/** Whether the (single) proof names a readable key whose thumbprint differs from `jkt`. */
async function proofKeyIsNot(dpop: string | string[] | undefined, jkt: string): Promise<boolean> {
  const proof = Array.isArray(dpop) ? (dpop.length === 1 ? dpop[0] : undefined) : dpop;
  if (proof === undefined) return false;
  try {
    const { jwk } = decodeProtectedHeader(proof);
    if (!isObject(jwk)) return false;
    return (await calculateJwkThumbprint(jwk as JWK, 'sha256')) !== jkt;
  } catch {
    return false;
  }
}

// --- verified-token cache -------------------------------------------------------------------

/** Least-recently-used map from SHA-256(token) to its verified claims, each kept until `expiresAt`. */
class VerifiedTokenCache {
  readonly #entries = new Map<string, { claims: TetherAccessClaims; expiresAt: number }>();
  readonly #maxEntries: number;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  get(digest: string, now: number): TetherAccessClaims | undefined {
    const entry = this.#entries.get(digest);
    if (entry === undefined) return undefined;
    this.#entries.delete(digest);
    if (now >= entry.expiresAt) return undefined;
    this.#entries.set(digest, entry); // most recently used goes last
    return entry.claims;
  }

  set(digest: string, claims: TetherAccessClaims, expiresAt: number): void {
    if (this.#maxEntries === 0) return;
    this.#entries.delete(digest);
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(digest, { claims, expiresAt });
  }
}

// --- helpers --------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

// The claims are shared by every request that presents the same token: nobody may edit them.
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}
