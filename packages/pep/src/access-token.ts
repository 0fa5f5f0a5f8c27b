import { calculateJwkThumbprint, decodeProtectedHeader, type JWK } from 'jose';
import {
  checkAudience,
  checkIssuer,
  checkLifetime,
  checkSession,
  readClaims,
  type TetherAccessClaims,
} from './access-token-claims.js';
import { findKey, readHeader, verifySignature } from './access-token-signature.js';
import {
  createDpopProofVerifier,
  DPOP_DEFAULTS,
  DpopError,
  type DpopProofVerifier,
  type DpopRequest,
  type VerifiedDpopProof,
} from './dpop.js';
import type { KeySource } from './jwks.js';
import type { ReplayCache } from './replay-cache.js';
import { refused, TokenRefused } from './token-refusal.js';
import { tokenDigest, VerifiedTokenCache } from './verified-token-cache.js';
import { sha256Base64urlSync, utf8LongerThan } from './web.js';

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
  /** When this PEP requires server-issued nonces: the current one, or a check (see `DpopRequest.nonce`). */
  nonce?: DpopRequest['nonce'];
}

export interface VerifiedAccess {
  claims: TetherAccessClaims;
  /** The `kid` of the broker key the token was signed with (a retired key revokes its tokens). */
  kid: string;
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
  proofs: DpopProofVerifier;
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
      // SHA-256 of the token is both its cache key and the `ath` its proof must carry: once.
      const digest = sha256Base64urlSync(token) ?? (await tokenDigest(token));
      let entry = cache.get(digest, nowMs);
      const cached = entry !== undefined;
      if (entry === undefined) {
        entry = await verifyToken(token, config, nowS);
      } else {
        // The same time checks, in the same order, as a fresh token gets.
        checkLifetime(entry.claims, nowS, config.leewaySeconds);
        checkSession(entry.claims, nowS, config.leewaySeconds);
      }
      const { claims, kid } = entry;
      const proof = await verifyProof(request, token, digest, claims, config);
      if (!cached) cache.set(digest, entry, (claims.exp + config.leewaySeconds) * 1000);
      return { claims, kid, proof };
    },
  };
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
    proofs: createDpopProofVerifier({
      now: options.now,
      replayCache: options.replayCache,
      iatWindowSeconds: dpopIatWindowSeconds,
      // A proof dated ahead gets the same skew allowance as the token's times, no more.
      clockToleranceSeconds: leewaySeconds,
    }),
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
  if (utf8LongerThan(token, ACCESS_TOKEN_DEFAULTS.maxTokenBytes)) {
    throw refused(`the token is larger than ${ACCESS_TOKEN_DEFAULTS.maxTokenBytes} bytes`);
  }
  if (!COMPACT_JWS.test(token)) throw refused('the token is not a compact JWS of three base64url parts');
  return token;
}

// --- token --------------------------------------------------------------------------------

async function verifyToken(
  token: string,
  config: VerifierConfig,
  nowS: number,
): Promise<{ claims: TetherAccessClaims; kid: string }> {
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
  return { claims, kid };
}

// --- DPoP proof -----------------------------------------------------------------------------

async function verifyProof(
  request: AccessTokenRequest,
  token: string,
  tokenHash: string,
  claims: TetherAccessClaims,
  config: VerifierConfig,
): Promise<VerifiedDpopProof> {
  // Anything else appended to the base URL could change its host ("api.example.com.evil.example").
  if (typeof request.path !== 'string' || !request.path.startsWith('/')) {
    throw new TokenRefused('invalid_dpop_proof', 'the request target must be a path beginning with /');
  }
  try {
    const dpopRequest: DpopRequest = {
      method: request.method,
      url: config.publicBaseUrl + request.path,
      accessToken: token,
      accessTokenHash: tokenHash,
      expectedJkt: claims.cnf.jkt,
    };
    if (request.nonce !== undefined) dpopRequest.nonce = request.nonce;
    return await config.proofs(request.dpop, dpopRequest);
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

/**
 * Whether the (single) proof names a readable key whose thumbprint differs from `jkt`: a proof
 * that failed for that reason is reported as RFC 9449 §7.1 does, `invalid_token` "Invalid DPoP
 * key binding", by the PEP and the broker alike.
 */
export async function proofKeyIsNot(dpop: string | string[] | undefined, jkt: string): Promise<boolean> {
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

// --- helpers --------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
