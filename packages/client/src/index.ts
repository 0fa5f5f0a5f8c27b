export {
  type AccessAsk,
  AccessNotGranted,
  type DeniedQuestion,
  requestAccessAfterDenial,
  requestableDenial,
  withRequestedAccess,
} from './access-requests.js';
export { BrokerClient, type BrokerClientOptions, BrokerError } from './broker-client.js';
export { createClientAssertion } from './client-assertion.js';
export { accessTokenHash, createDpopProof, type ProofTarget } from './dpop-proof.js';
export { IdentityError, loadIdentity, tetherHome, writeIdentity } from './identity.js';
export { createKeyProof, KEY_PROOF_JWT_TYPE } from './key-proof.js';
export {
  BoundSession,
  type RecordingPlan,
  type SessionInfo,
  type SessionTokenSet,
  type TaskRequest,
  withSession,
} from './session.js';
export { exportSessionKey, generateSessionKey, type SessionKey, sessionKeyFromJwk } from './session-key.js';
export { RECORDING_PROOF_TYP, type RecorderOptions, SessionRecorder } from './session-recorder.js';
export {
  ACTOR_TOKEN_TYP,
  createActorToken,
  delegateSubSession,
  type SubSessionAsk,
  withSubSession,
} from './sub-session.js';
