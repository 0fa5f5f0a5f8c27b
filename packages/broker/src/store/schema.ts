/**
 * Row types, one per table. Timestamps are epoch milliseconds (`bigint` columns, read back as
 * numbers); structured fields are JSON text, so both dialects store exactly the same thing.
 */
export interface TenantRow {
  id: string;
  name: string;
  display_name: string;
  time_zone: string;
  created_at: number;
}

export interface PrincipalRow {
  id: string;
  tenant_id: string;
  name: string;
  kind: string;
  enabled: number;
  roles: string; // JSON string[]
  attributes: string; // JSON Record<string,string>
  created_at: number;
  updated_at: number;
}

export interface PrincipalKeyRow {
  tenant_id: string;
  principal_id: string;
  kid: string; // RFC 7638 thumbprint
  public_jwk: string; // JSON, public members only
  created_at: number;
}

export interface GroupRow {
  id: string;
  tenant_id: string;
  name: string;
  description: string;
  created_at: number;
}

export interface GroupMemberRow {
  tenant_id: string;
  group_id: string;
  principal_id: string;
}

export interface PrivilegeRow {
  id: string;
  tenant_id: string;
  name: string;
  description: string;
  actions: string; // JSON string[]
  resources: string; // JSON string[]
  audiences: string; // JSON string[]
  max_duration_s: number;
  token_ttl_s: number;
  approval: string; // JSON ApprovalRule
  ticket: string; // JSON TicketRule
  binding: string; // JSON BindingRule
  attributes: string; // JSON Record<string,string>
  created_at: number;
  updated_at: number;
}

export interface PolicyVersionRow {
  tenant_id: string;
  version: number;
  policies: string; // JSON Record<id, text>
  created_by: string;
  created_at: number;
}

export interface AccessRequestRow {
  id: string;
  tenant_id: string;
  principal_id: string;
  privilege_id: string;
  ticket: string | null;
  justification: string;
  duration_s: number;
  state: string;
  approvals_required: number;
  created_at: number;
  expires_at: number;
  resolved_at: number | null;
  resolved_by: string | null;
  activation_expires_at: number | null;
  policies: string; // JSON string[]: the policy ids that decided eligibility/auto-approval
}

export interface RequestReviewRow {
  tenant_id: string;
  request_id: string;
  reviewer_id: string;
  decision: string; // 'approve' | 'deny'
  comment: string;
  policies: string; // JSON string[]
  created_at: number;
}

export interface AuditRecordRow {
  tenant_id: string;
  seq: number;
  id: string;
  at: number;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  request_id: string | null;
  ticket: string | null;
  principal_id: string | null;
  policies: string; // JSON string[]
  details: string; // JSON object
  prev_hash: string;
  hash: string;
}

export interface AuditHeadRow {
  tenant_id: string;
  seq: number;
  hash: string;
}

export interface ClientAssertionJtiRow {
  principal_id: string;
  jti: string;
  expires_at: number;
}

export interface SigningKeyRow {
  kid: string;
  alg: string;
  public_jwk: string;
  private_jwk_enc: string; // AES-256-GCM envelope, see tokens/key-encryption.ts
  state: string; // 'active' | 'retired'
  created_at: number;
  retire_at: number | null;
}

export interface SessionRow {
  id: string;
  tenant_id: string;
  request_id: string;
  principal_id: string;
  privilege_id: string;
  ticket: string | null;
  jkt: string;
  state: string; // 'active' | 'ended'
  end_reason: string | null;
  ended_by: string | null;
  activated_at: number;
  hard_expires_at: number;
  ended_at: number | null;
  status_list_id: number;
  status_idx: number;
  grant: string; // JSON SessionGrant
  last_activity_at: number;
}

export interface RefreshTokenRow {
  token_hash: string; // SHA-256 of the token, hex: the token itself is never stored
  tenant_id: string;
  session_id: string;
  state: string; // 'active' | 'spent' | 'revoked'
  created_at: number;
  idle_expires_at: number;
  used_at: number | null;
}

export interface DpopJtiRow {
  jkt: string;
  jti: string;
  expires_at: number;
}

export interface StatusListRow {
  id: number;
  tenant_id: string;
  bits: number;
  size: number;
  created_at: number;
}

export interface StatusListSlotRow {
  list_id: number;
  idx: number;
  tenant_id: string;
  session_id: string;
  status: number;
  reusable_at: number;
}

export interface FederationRow {
  id: string;
  tenant_id: string;
  name: string;
  issuer: string;
  audience: string; // unique with issuer across all tenants
  jwks_uri: string | null; // exactly one of jwks_uri and jwks is set
  jwks: string | null; // JSON JWK Set, public keys only
  algorithms: string; // JSON string[]
  principal_mapping: string; // JSON MappingRule[] (principal ids)
  context_claims: string; // JSON string[]
  task_claim: string;
  max_token_age_s: number;
  created_at: number;
}

export interface FederatedRequestRow {
  request_id: string;
  tenant_id: string;
  federation_id: string;
  subject: string; // the workload token's sub
  principal_tags: string; // JSON Record<string,string>: the claim tags policy saw
  created_at: number;
}

export interface RevocationEventRow {
  tenant_id: string;
  seq: number; // 1, 2, 3, … per tenant, no gaps: see migrations/0004-revocation-log.ts
  type: string; // RevocationEventType
  subject: string; // what the event is about: the session id, the key id, or the tenant id
  payload: string; // JSON, the event's data as sent to PEPs
  at: number;
}

export interface RevocationHeadRow {
  tenant_id: string;
  seq: number; // the newest event's seq; the row is created by the tenant's first event
}

export interface Tables {
  tenants: TenantRow;
  principals: PrincipalRow;
  principal_keys: PrincipalKeyRow;
  groups: GroupRow;
  group_members: GroupMemberRow;
  privileges: PrivilegeRow;
  policy_versions: PolicyVersionRow;
  access_requests: AccessRequestRow;
  request_reviews: RequestReviewRow;
  audit_records: AuditRecordRow;
  audit_heads: AuditHeadRow;
  client_assertion_jtis: ClientAssertionJtiRow;
  signing_keys: SigningKeyRow;
  sessions: SessionRow;
  refresh_tokens: RefreshTokenRow;
  dpop_jtis: DpopJtiRow;
  status_lists: StatusListRow;
  status_list_slots: StatusListSlotRow;
  federations: FederationRow;
  federated_requests: FederatedRequestRow;
  revocation_events: RevocationEventRow;
  revocation_heads: RevocationHeadRow;
}
