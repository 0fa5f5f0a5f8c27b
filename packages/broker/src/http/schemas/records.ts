/** The record schemas live in `@tether-broker/protocol`; views.ts names its answers after these. */
export type {
  AuditRecordView,
  AuditVerificationView,
  GroupView,
  KeyView,
  PolicySetView,
  PrincipalView,
  PrivilegeView,
  RequestView,
  ReviewView,
  TenantView,
} from '@tether-broker/protocol';
