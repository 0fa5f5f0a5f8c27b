/**
 * The enforcement-point library. Its verifier (DPoP, access tokens, the revocation mirror)
 * arrives with session-bound tokens; for now it carries the shared wire facts a PEP needs.
 */
export { ERROR_CATALOGUE, type ErrorCode, type Problem } from '@tether/protocol';
