/**
 * The enforcement-point library: verifies what a request presents, locally. The access-token
 * verifier and the revocation mirror build on the DPoP checks exported here.
 */
export { ERROR_CATALOGUE, type ErrorCode, type Problem } from '@tether/protocol';
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
export { htuMatches, normalizeHtu } from './htu.js';
export { ReplayCache, ReplayCacheFullError, type ReplayCacheOptions } from './replay-cache.js';
