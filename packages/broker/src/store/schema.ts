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
  kind: string; // 'standalone' | 'provider' | 'customer' (0030)
  provider_tenant_id: string | null; // a customer's provider (0030)
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
  contract_starts_at: number | null; // epoch ms (0029); null: no start bound
  contract_ends_at: number | null; // epoch ms (0029); null: no end bound
  home_tenant_id: string | null; // a provider operator's seat: the operator's tenant (0030)
  home_principal_id: string | null; // ... and the operator, whose keys it authenticates with
}

/** A provider's relationship with a customer (0030); JSON columns hold ids. */
export interface RelationshipRow {
  id: string;
  provider_tenant_id: string;
  customer_tenant_id: string;
  name: string;
  state: string; // 'proposed' | 'active' | 'ended'
  provider_groups: string; // JSON string[]: group ids in the provider tenant
  privileges: string; // JSON string[]: privilege ids in the customer tenant
  approval: string; // JSON { customer: number, provider: number }
  starts_at: number | null;
  ends_at: number;
  proposed_by: string;
  proposed_at: number;
  accepted_by: string | null;
  accepted_at: number | null;
  ended_by: string | null;
  ended_at: number | null;
  end_reason: string | null;
  updated_at: number;
  seal: string; // the trust-bearing fields sealed under the KEK, bound to the id
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
  idle_timeout_s: number | null; // seconds without activity before a session ends; null: no idle timeout
  approval: string; // JSON ApprovalRule
  ticket: string; // JSON TicketRule
  binding: string; // JSON BindingRule
  attributes: string; // JSON Record<string,string>
  connectors: string; // JSON string[]: names of the tenant's connectors its sessions get credentials from
  recording: string; // 'none' | 'output' | 'input_and_output': whether its sessions must run recorded
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
  kind: string; // 'access' | 'extension' | 'delegation'
  session_id: string | null; // extension: the session it extends (duration_s is the time added)
  relationship_id: string | null; // asked by a provider's operator under a relationship (0030)
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
  hash: string; // mac_version 0: SHA-256 of the fields; 1: HMAC-SHA256 under the chain key
  mac_version: number; // 0 unkeyed (before migration 0011), 1 keyed
}

export interface AuditHeadRow {
  tenant_id: string;
  seq: number;
  hash: string;
  mac_key: string | null; // id of the key the chain is keyed with; null: not keyed yet
}

/** Which audit key new chains are keyed with (its id only; the key derives from the KEK). */
export interface AuditKeyRow {
  id: string;
  created_at: number;
}

/** An authenticated snapshot of a chain's head (see audit/checkpoints.ts). */
export interface AuditCheckpointRow {
  tenant_id: string;
  seq: number;
  hash: string;
  at: number;
  kind: string; // 'legacy_seal' | 'timer' | 'verify'
  key_id: string;
  tag: string; // HMAC-SHA256 under the checkpoint key
}

/** The digest of the broker settings last written to the audit chains. */
export interface AuditedSettingsRow {
  id: string;
  digest: string;
  settings: string; // JSON of the non-secret settings
  at: number;
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
  private_jwk_enc: string; // AES-256-GCM envelope, see config/key-encryption.ts
  state: string; // 'active' | 'retired'
  created_at: number;
  retire_at: number | null;
  seal_version: number; // 1: KEK only (legacy, re-sealed at start); 2: kid and public key bound as AAD
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
  idle_timeout_s: number | null; // copied from the privilege at activation; null: no idle timeout
  narrowed_before: number | null; // epoch seconds: tokens of the session issued before it are refused
  parent_session_id: string | null; // a sub-session's parent (0023); null for a session of its own
  delegation_depth: number; // 0 for a session of its own, parent's + 1 for a sub-session
  act: string | null; // JSON RFC 8693 act claim of a sub-session's tokens
  call_budget: string | null; // JSON Record<action, calls> a sub-session may make; null: none
  calls_made: string | null; // JSON Record<action, calls> reported so far
  relationship_id: string | null; // made under a provider relationship (0030)
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
  /** Bumped whenever what the published list encodes changes (0018). */
  version: number;
  /** Rows of `status_list_slots` for this list, kept with every insert and delete (0031). */
  slots: number;
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
  ends_with_subject_token: number; // 0/1 (0023): sessions last no longer than the subject token
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

export interface PepRow {
  principal_id: string; // the PEP's principal (role pep)
  tenant_id: string;
  last_applied_seq: number; // newest revocation-log position it acknowledged; never moves back
  last_seen_at: number; // last ack or decision report, broker clock
  decisions_dropped: number; // total decisions it reported as dropped
  created_at: number; // first heard from
}

export interface PepAckRow {
  tenant_id: string;
  principal_id: string;
  seq: number; // written only when the ack moved the PEP forward
  at: number;
}

export interface PepAudienceRow {
  tenant_id: string;
  principal_id: string; // a principal with the pep role
  audience: string; // an audience it enforces, set by an admin
  created_at: number;
}

export interface PepInstanceRow {
  tenant_id: string;
  principal_id: string;
  instance_id: string; // random per PEP process start, sent with its acks
  last_applied_seq: number; // newest position this instance acknowledged; never moves back
  last_seen_at: number; // its last ack, broker clock
  created_at: number;
}

export interface PepInstanceAckRow {
  tenant_id: string;
  principal_id: string;
  instance_id: string;
  seq: number; // written only when the ack moved the instance forward
  at: number;
}

export interface WebhookRow {
  id: string;
  tenant_id: string;
  name: string; // the ticket source's name, unique in the tenant
  kind: string; // WebhookKind
  secret_enc: string; // the HMAC secret, sealed under the KEK (config/key-encryption.ts)
  assignee_attribute: string; // principal attribute holding a person's identity in that ticket system
  created_by: string;
  created_at: number;
}

export interface WebhookDeliveryRow {
  webhook_id: string;
  delivery_id: string; // the sender's delivery id: a second delivery with it is a replay
  tenant_id: string;
  outcome: string; // 'applied' | 'unchanged' | 'stale'
  received_at: number;
}

export interface TicketRow {
  tenant_id: string;
  ref: string;
  source: string; // webhook name, or 'manual'
  kind: string; // WebhookKind | 'manual'
  state: string; // 'open' | 'closed'
  title: string;
  url: string | null;
  assignees: string; // JSON string[]
  event_at: number; // the ticket system's timestamp of the state held: orders deliveries
  closed_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface SsfStreamRow {
  id: string;
  tenant_id: string;
  owner_id: string; // the receiver principal that manages the stream (admins manage every stream)
  aud: string; // JSON string[]: the SETs' aud, fixed at creation
  events_requested: string; // JSON string[]
  method: string; // 'push' | 'poll'
  endpoint_url: string | null; // push: the receiver's URL
  authorization_enc: string | null; // push: the Authorization header to send, sealed under the KEK
  description: string;
  status: string; // 'enabled' | 'paused' | 'disabled'
  status_reason: string | null;
  last_seq: number; // the newest outbox position handed out on this stream
  next_attempt_at: number; // push: when the head may be sent (backoff, or a replica's lease)
  lease_token: string | null; // push: set while a replica is sending the head
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface SsfOutboxRow {
  stream_id: string;
  seq: number; // 1, 2, 3, … per stream: delivery order
  tenant_id: string;
  jti: string;
  kind: string; // SetKind
  facts: string; // JSON: what happened, as the revocation log or the verification request said
  set_claims: string | null; // JSON: the SET's claims, fixed when it is first sent
  created_at: number;
  attempts: number; // push attempts that failed
  last_error: string | null;
}

export interface SignalTransmitterRow {
  id: string;
  tenant_id: string;
  name: string;
  issuer: string; // the iss of its SETs; (issuer, audience) is unique across all tenants
  audience: string;
  jwks_uri: string | null; // exactly one of jwks_uri and jwks is set
  jwks: string | null; // JSON JWK Set, public keys only
  created_by: string;
  created_at: number;
}

export interface SignalJtiRow {
  tenant_id: string;
  issuer: string;
  jti: string; // a SET id already accepted: the same one again is a replay
  expires_at: number;
}

/** A subject token that started a session by token exchange: the same token again is a replay. */
export interface SubjectTokenUseRow {
  token_key: string; // SHA-256 of (issuer, jti), or of the whole token when it has no jti; never the token
  tenant_id: string;
  federation_id: string;
  request_id: string; // the access request whose session the token started
  used_at: number;
  expires_at: number; // the token's exp + clock tolerance, epoch ms: pruned after
}

export interface TrustContextRow {
  tenant_id: string;
  principal_id: string;
  session_id: string; // '' for the principal's own context
  device_compliance: string | null;
  device_compliance_at: number | null; // each *_at: when the event that set the fact happened
  assurance_level: string | null;
  assurance_level_at: number | null;
  risk_level: string | null;
  risk_level_at: number | null;
  credential_changed_at: number | null;
  claims: string | null; // JSON Record<string,string>
  claims_at: number | null;
  updated_at: number;
}

export interface ReevaluationJobRow {
  id: string;
  tenant_id: string;
  selector: string; // JSON SessionSelector
  trigger: string; // JSON ReevaluationTrigger
  state: string; // 'pending' | 'done'
  cursor: string; // the last session id processed ('' before the first batch)
  processed: number;
  narrowed: number;
  ended: number;
  created_at: number;
  finished_at: number | null;
}

export interface ConnectorRow {
  id: string;
  tenant_id: string;
  name: string;
  kind: string; // 'postgres'
  settings: string; // JSON: the kind's non-secret settings (grant roles, …)
  sealed_secret: string; // the kind's secret (an admin connection URL), sealed with the KEK, bound to id and kind
  created_at: number;
  updated_at: number;
}

export interface ConnectorJobRow {
  id: string;
  tenant_id: string;
  session_id: string;
  connector_id: string;
  action: string; // 'mint' | 'destroy'
  state: string; // 'pending' | 'done'
  attempts: number;
  next_attempt_at: number;
  lease_until: number | null; // a runner holds the job until then
  lease_token: string | null; // the holding runner's random token: only it may complete the job
  last_error: string | null; // why the last attempt failed (never a secret)
  created_at: number;
  done_at: number | null;
}

export interface SessionCredentialRow {
  session_id: string;
  connector_id: string;
  tenant_id: string;
  username: string;
  fingerprint: string; // SHA-256 of the secret, for evidence; never the secret
  sealed_secret: string | null; // sealed until the holder collects it (or the session ends)
  valid_until: number;
  minted_at: number;
  collected_at: number | null;
  destroyed_at: number | null;
  connections_terminated: number | null;
}

export interface RecordingRow {
  session_id: string;
  tenant_id: string;
  mode: string; // 'output' | 'input_and_output', from the privilege at activation
  chunks: number;
  bytes: number;
  last_time_us: number; // time of the last event, microseconds from the recording's start
  digest: string; // hex SHA-256 chained over every chunk's hash, in order
  complete: number; // 1 once the final chunk arrived
  due_at: number | null; // the next chunk must arrive by then, or the session ends; null: complete or ended
  updated_at: number;
}

export interface RecordingChunkRow {
  session_id: string;
  seq: number;
  tenant_id: string;
  data: string; // asciicast v2 lines
  sha256: string; // hex SHA-256 of data, also in the audit chain
  received_at: number;
}

export interface AccessRequestTaskRow {
  jti: string; // the binding token's id: each requestable denial is submitted once
  tenant_id: string;
  principal_id: string; // who submitted (the denied subject)
  request_id: string; // the Tether request the submission created: the task
  idempotency_key: string | null;
  body_hash: string; // SHA-256 of the canonical submission
  created_at: number;
}

export interface NotificationChannelRow {
  id: string;
  tenant_id: string;
  name: string;
  kind: string; // 'slack' | 'teams' | 'email' | 'webhook'
  events: string; // JSON array of the events it gets
  settings: string; // JSON: the kind's non-secret settings
  sealed_secret: string | null; // URL with its token, SMTP password or HMAC key, sealed with the KEK, bound to id and kind
  created_by: string;
  created_at: number;
  last_success_at: number | null;
  last_failure_at: number | null;
  last_error: string | null; // why the last attempt failed (never a secret)
}

export interface NotificationOutboxRow {
  id: string;
  tenant_id: string;
  channel_id: string;
  event: string;
  facts: string; // JSON: what the message says, captured in the event's transaction
  state: string; // 'pending' | 'delivered' | 'failed'
  attempts: number;
  next_attempt_at: number;
  lease_until: number | null;
  lease_token: string | null;
  last_error: string | null;
  created_at: number;
  done_at: number | null;
}

/** Written and emptied by `/readyz`'s write probe; always empty between probes. */
export interface StoreProbeRow {
  id: string;
  payload: string;
  at: number;
}

export interface ConsoleInvitationRow {
  token_hash: string; // SHA-256 hex of the link's secret
  tenant_id: string;
  principal_id: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface PasskeyRow {
  credential_id: string; // base64url
  tenant_id: string;
  principal_id: string;
  sealed_public_key: string; // sealed (KEK), bound to tenant, principal and credential id
  counter: number;
  transports: string; // JSON string[]
  created_at: number;
  last_used_at: number | null;
}

export interface WebauthnChallengeRow {
  challenge: string;
  purpose: string; // 'enrol' | 'sign_in'
  tenant_id: string | null;
  principal_id: string | null;
  expires_at: number;
}

export interface ConsoleSessionRow {
  id_hash: string; // SHA-256 hex of the cookie value
  tenant_id: string;
  principal_id: string;
  csrf_hash: string; // SHA-256 hex of the CSRF token
  passkey_id: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  ended_at: number | null;
  end_reason: string | null;
  verified_at: number | null; // last passkey verification in this session (0027); null: signed in by OIDC
}

export interface ConsoleOidcConfigRow {
  id: string;
  tenant_id: string; // one per tenant
  issuer: string;
  client_id: string;
  sealed_client_secret: string; // sealed (KEK), bound to tenant and config id; never answered
  scopes: string; // space-separated, always with openid
  claim: string; // the ID token claim matched…
  attribute: string; // …against this principal attribute
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface ConsoleOidcFlowRow {
  state_hash: string; // SHA-256 hex of the state
  tenant_id: string;
  config_id: string;
  browser_hash: string; // SHA-256 hex of the flow cookie of the browser that started it
  code_verifier: string; // PKCE
  nonce: string;
  expires_at: number;
}

export interface DeviceLoginRow {
  id: string;
  device_code_hash: string; // SHA-256 hex of the device code
  user_code: string; // e.g. BCDF-GHJK
  tenant_id: string;
  jkt: string; // the CLI's DPoP key: the token is bound to it
  state: string; // 'pending' | 'approved' | 'denied' | 'used' | 'ended'
  principal_id: string | null;
  created_at: number;
  expires_at: number;
  last_poll_at: number | null;
  token_expires_at: number | null;
}

export interface Tables {
  store_probe: StoreProbeRow;
  tenants: TenantRow;
  relationships: RelationshipRow;
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
  audit_keys: AuditKeyRow;
  audit_checkpoints: AuditCheckpointRow;
  audited_settings: AuditedSettingsRow;
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
  webhooks: WebhookRow;
  webhook_deliveries: WebhookDeliveryRow;
  tickets: TicketRow;
  peps: PepRow;
  pep_acks: PepAckRow;
  pep_audiences: PepAudienceRow;
  pep_instances: PepInstanceRow;
  pep_instance_acks: PepInstanceAckRow;
  ssf_streams: SsfStreamRow;
  ssf_outbox: SsfOutboxRow;
  signal_transmitters: SignalTransmitterRow;
  signal_jtis: SignalJtiRow;
  subject_token_uses: SubjectTokenUseRow;
  trust_contexts: TrustContextRow;
  reevaluation_jobs: ReevaluationJobRow;
  connectors: ConnectorRow;
  connector_jobs: ConnectorJobRow;
  session_credentials: SessionCredentialRow;
  recordings: RecordingRow;
  recording_chunks: RecordingChunkRow;
  access_request_tasks: AccessRequestTaskRow;
  notification_channels: NotificationChannelRow;
  notification_outbox: NotificationOutboxRow;
  console_invitations: ConsoleInvitationRow;
  passkeys: PasskeyRow;
  webauthn_challenges: WebauthnChallengeRow;
  console_sessions: ConsoleSessionRow;
  device_logins: DeviceLoginRow;
  console_oidc_configs: ConsoleOidcConfigRow;
  console_oidc_flows: ConsoleOidcFlowRow;
}
