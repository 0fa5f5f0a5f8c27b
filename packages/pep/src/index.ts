/**
 * The enforcement-point library: verifies what a request presents, locally. The access-token
 * verifier and the revocation mirror build on the DPoP checks exported here.
 */
export { ERROR_CATALOGUE, type ErrorCode, type Problem } from '@tether/protocol';
export {
  ACCESS_TOKEN_DEFAULTS,
  type AccessTokenRequest,
  type AccessTokenVerifier,
  type AccessTokenVerifierOptions,
  createAccessTokenVerifier,
  type VerifiedAccess,
} from './access-token.js';
export type { TetherAccessClaims, TetherPrivilegeDetail } from './access-token-claims.js';
export {
  DPOP_DEFAULTS,
  DpopError,
  type DpopErrorCode,
  type DpopRequest,
  type DpopVerifierOptions,
  dpopAth,
  type VerifiedDpopProof,
  verifyDpopProof,
} from './dpop.js';
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
export { type TokenRefusalCode, TokenRefused } from './token-refusal.js';
