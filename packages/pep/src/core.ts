/**
 * `@tether-broker/pep/core`: the decision path without Node. Token and DPoP verification, the
 * issuer's keys, the revocation feed's verification and mirror, entitlement matching and the
 * denials — on WebCrypto and web APIs only, so it runs wherever WebCrypto does (Node, Deno,
 * Bun, workers). The root entry adds what needs Node: `createEnforcer` (its revocation
 * follower streams over `node:http`), PEP-issued DPoP nonces and the Node/fastify adapters.
 * `core-runtime.test.ts` keeps every module this file reaches free of `node:*`.
 *
 * @example
 * ```ts
 * import { createAccessTokenVerifier, remoteKeySource, ReplayCache } from '@tether-broker/pep/core';
 *
 * const verifier = createAccessTokenVerifier({
 *   issuer, audience, tenant, publicBaseUrl, now: Date.now,
 *   keys: remoteKeySource(`${issuer}/.well-known/jwks.json`, { now: Date.now }),
 *   replayCache: new ReplayCache({ maxEntries: 100_000, now: Date.now }),
 * });
 * const { claims } = await verifier.verify({ method, path, authorization, dpop });
 * ```
 */
export { ERROR_CATALOGUE, type ErrorCode, type Problem } from '@tether-broker/protocol';
export {
  ACCESS_TOKEN_DEFAULTS,
  type AccessTokenRequest,
  type AccessTokenVerifier,
  type AccessTokenVerifierOptions,
  createAccessTokenVerifier,
  proofKeyIsNot,
  type VerifiedAccess,
} from './access-token.js';
export type { ActorClaim, TetherAccessClaims, TetherPrivilegeDetail } from './access-token-claims.js';
export { denialResponse } from './adapters/denial.js';
export type { Decision, DecisionCode } from './decision.js';
export {
  DPOP_DEFAULTS,
  DpopError,
  type DpopErrorCode,
  type DpopNonceCheck,
  type DpopRequest,
  type DpopVerifierOptions,
  dpopAth,
  type VerifiedDpopProof,
  verifyDpopProof,
} from './dpop.js';
export { actionCovers, findEntitlement, resourceCovers, resourceProblem } from './entitlement.js';
export {
  REVOCATION_FEED_DEFAULTS,
  type RevocationFeedOptions,
  RevocationFeedVerifier,
  type RevocationMessageRefusalCode,
  RevocationMessageRefused,
  type VerifiedHeartbeat,
  type VerifiedRevocationEvent,
} from './events.js';
export { htuMatches, normalizeHtu } from './htu.js';
export {
  JWKS_DEFAULTS,
  JwksError,
  type KeySource,
  KeySourceUnavailableError,
  localKeySource,
  type RemoteKeySourceOptions,
  remoteKeySource,
} from './jwks.js';
export { ReplayCache, ReplayCacheFullError, type ReplayCacheOptions } from './replay-cache.js';
export {
  type MirrorQuery,
  type MirrorRefusal,
  type MirrorSnapshot,
  RevocationMirror,
} from './revocation-mirror.js';
export { SseDecoder, type SseMessage } from './sse-decoder.js';
export { type TokenRefusalCode, TokenRefused } from './token-refusal.js';
