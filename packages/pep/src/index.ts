/**
 * The enforcement-point library: verifies what a request presents, locally. Everything of
 * `@tether-broker/pep/core` (the decision path on WebCrypto alone), plus what needs Node: the
 * enforcer with its revocation follower, the broker link, PEP-issued DPoP nonces, decision
 * reports and the Node/fastify adapters.
 */

export { type TetherRouteOption, tetherFastify } from './adapters/fastify.js';
export {
  decisionOf,
  type RequirementOf,
  sendDenial,
  TETHER_DECISION,
  tetherMiddleware,
} from './adapters/node.js';
export { BrokerCallFailed, BrokerLink, type PepIdentity } from './broker-link.js';
export * from './core.js';
export {
  DECISION_RECORDER_DEFAULTS,
  type DecisionRecord,
  DecisionRecorder,
  type DecisionRecorderOptions,
} from './decision-recorder.js';
export {
  type AuthorizeRequest,
  createEnforcer,
  ENFORCER_DEFAULTS,
  type Enforcer,
  type EnforcerOptions,
  type EnforcerState,
} from './enforcer.js';
export { type PepLogger, silentLogger } from './logger.js';
export { DPOP_NONCE_DEFAULTS, type DpopNonceOptions, PepDpopNonces } from './nonce.js';
export {
  type FallbackVerdict,
  RevocationFallback,
  type RevocationFallbackOptions,
} from './revocation-fallback.js';
export { RevocationFollower, type RevocationFollowerOptions } from './revocation-follower.js';
