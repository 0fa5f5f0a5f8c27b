/**
 * The enforcement-point library: verifies what a request presents, locally. The access-token
 * verifier and the revocation mirror build on the DPoP checks exported here.
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
export type { TetherAccessClaims, TetherPrivilegeDetail } from './access-token-claims.js';
export { denialResponse } from './adapters/denial.js';
export { type TetherRouteOption, tetherFastify } from './adapters/fastify.js';
export {
  decisionOf,
  type RequirementOf,
  sendDenial,
  TETHER_DECISION,
  tetherMiddleware,
} from './adapters/node.js';
export { BrokerCallFailed, BrokerLink, type PepIdentity } from './broker-link.js';
export {
  DECISION_RECORDER_DEFAULTS,
  type DecisionRecord,
  DecisionRecorder,
  type DecisionRecorderOptions,
} from './decision-recorder.js';
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
export {
  type AuthorizeRequest,
  createEnforcer,
  type Decision,
  type DecisionCode,
  ENFORCER_DEFAULTS,
  type Enforcer,
  type EnforcerOptions,
  type EnforcerState,
} from './enforcer.js';
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
export { type PepLogger, silentLogger } from './logger.js';
export { DPOP_NONCE_DEFAULTS, type DpopNonceOptions, PepDpopNonces } from './nonce.js';
export { ReplayCache, ReplayCacheFullError, type ReplayCacheOptions } from './replay-cache.js';
export {
  type FallbackVerdict,
  RevocationFallback,
  type RevocationFallbackOptions,
} from './revocation-fallback.js';
export { RevocationFollower, type RevocationFollowerOptions } from './revocation-follower.js';
export {
  type MirrorQuery,
  type MirrorRefusal,
  type MirrorSnapshot,
  RevocationMirror,
} from './revocation-mirror.js';
export { SseDecoder, type SseMessage } from './sse-decoder.js';
export { type TokenRefusalCode, TokenRefused } from './token-refusal.js';
