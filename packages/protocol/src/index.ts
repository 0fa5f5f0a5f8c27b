export * from './asciicast.js';
export { backoffDelay } from './backoff.js';
export type {
  CredentialReceipt,
  DecisionRecord,
  DecisionReport,
  DecisionReportAnswer,
  PepAckAnswer,
  PepAckRequest,
  PepAudiencesAnswer,
  PepAudiencesRequest,
  PepInstanceReceipt,
  PepReceipt,
  SessionReceipt,
} from './enforcement.js';
export { DECISION_BATCH_MAX, DECISION_FIELD_MAX, PEP_INSTANCE_PATTERN } from './enforcement.js';
export type { ErrorCode } from './errors.js';
export { ERROR_CATALOGUE, ERROR_CODES, isErrorCode, isTetherError, statusOf, TetherError } from './errors.js';
export type {
  HeartbeatClaims,
  KeyRetiredData,
  RevocationEvent,
  RevocationEventClaims,
  RevocationEventType,
  SessionEndedData,
  SessionNarrowedData,
  SnapshotClaims,
  SnapshotStatusList,
  TenantCutoffData,
} from './events.js';
export {
  HEARTBEAT_JWT_TYPE,
  isEpochSeconds,
  REVOCATION_EVENT_JWT_TYPE,
  REVOCATION_EVENT_TYPES,
  readRevocationEvent,
  SNAPSHOT_JWT_TYPE,
  SSE_HEARTBEAT_EVENT,
  SSE_REVOCATION_EVENT,
  SSE_SNAPSHOT_EVENT,
} from './events.js';
export type { IdentityFile, PrincipalKind, RequestState, Role } from './principals.js';
export { NAME_PATTERN, PRINCIPAL_KINDS, REQUEST_STATES, ROLES } from './principals.js';
export type { OAuthErrorBody, OAuthErrorCode, Problem } from './problem.js';
export { PROBLEM_MEDIA_TYPE, problemType, toProblem } from './problem.js';
export type { StatusBits } from './status-list.js';
export { DEFAULT_MAX_STATUS_LIST_ENTRIES, StatusList, StatusListError, TOKEN_STATUS } from './status-list.js';
export { insecureHttpReason, isLoopbackHost } from './transport.js';
