// The broker API's wire schemas (TypeBox) and, under the same names, their types.
export {
  Changed,
  Deleted,
  EmptyObject,
  IdParams,
  Name,
  Ref,
  RefParams,
  Strict,
} from './api/common.js';
export {
  DecisionReportBody,
  DecisionReportView,
  PepAckBody,
  PepAckView,
  PepAudiencesBody,
  PepAudiencesView,
  PepParams,
  SessionReceiptView,
} from './api/enforcement.js';
export {
  FederationList,
  FederationView,
  Jwk,
} from './api/federations.js';
export {
  ApprovalRuleBody,
  ApprovalRuleView,
  AuditQuery,
  AuditRecordView,
  AuditVerificationView,
  CancelBody,
  GroupView,
  KeyParams,
  KeyView,
  MemberParams,
  NewGroupBody,
  NewKeyBody,
  NewPrincipalBody,
  NewPrivilegeBody,
  NewRequestBody,
  PolicySetBody,
  PolicySetView,
  PolicyTexts,
  PolicyValidationView,
  PolicyVersionsView,
  PrincipalChangesBody,
  PrincipalView,
  PrivilegeChangesBody,
  PrivilegeView,
  RequestQuery,
  RequestView,
  ReviewBody,
  ReviewView,
  TenantView,
  TicketRuleBody,
  VersionParams,
} from './api/records.js';
export {
  ActivationView,
  EndSessionBody,
  ExtendSessionBody,
  RevokedView,
  RevokeSessionsBody,
  SessionParams,
  SessionQuery,
  SessionView,
  StatusListParams,
} from './api/sessions.js';
export {
  NewTransmitterBody,
  TransmitterList,
  TransmitterView,
} from './api/signals.js';
export {
  PollBody,
  PollParams,
  PollView,
  StatusView,
  StreamId,
  StreamIdQuery,
  StreamQuery,
  StreamView,
  TransmitterMetadata,
} from './api/ssf.js';
export {
  ClosedTicketView,
  CloseTicketBody,
  CreatedWebhookView,
  DeliveryParams,
  DeliveryView,
  NewWebhookBody,
  TicketParams,
  TicketQuery,
  TicketRef,
  TicketView,
  WebhookKind,
  WebhookRefParams,
  WebhookView,
} from './api/tickets.js';
export type {
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
