/** The shapes of the broker's JSON answers that the CLI reads (snake_case, as on the wire). */

export interface KeyAnswer {
  kid: string;
  jwk: Record<string, unknown>;
  created_at: string;
}

export interface PrincipalAnswer {
  id: string;
  name: string;
  kind: string;
  enabled: boolean;
  roles: string[];
  attributes: Record<string, string>;
  created_at: string;
  updated_at: string;
  keys?: KeyAnswer[];
}

export interface TenantAnswer {
  id: string;
  name: string;
  display_name: string;
  time_zone: string;
  created_at: string;
}

export interface GroupAnswer {
  id: string;
  name: string;
  description: string;
  created_at: string;
  members?: string[];
}

export interface PrivilegeAnswer {
  id: string;
  name: string;
  description: string;
  actions: string[];
  resources: string[];
  audiences: string[];
  max_duration: number;
  token_ttl: number;
  /** Seconds without activity before a session ends; null: none. */
  idle_timeout: number | null;
  approval: { approvals: number; approvers: { principals: string[]; groups: string[] } };
  ticket: { required: boolean; pattern?: string; source?: string; open?: boolean; assigned?: boolean };
  binding: { method: string };
  attributes: Record<string, string>;
  created_at: string;
  updated_at: string;
}

export interface ReviewAnswer {
  reviewer: string;
  decision: string;
  comment: string;
  policies: string[];
  at: string;
}

export interface RequestAnswer {
  id: string;
  /** `access` (a new session) or `extension` (more time for `session`). */
  kind: string;
  session: string | null;
  principal: string;
  privilege: string;
  ticket: string | null;
  justification: string;
  duration: number;
  state: string;
  approvals_required: number;
  created_at: string;
  expires_at: string;
  resolved_at: string | null;
  resolved_by: string | null;
  activation_expires_at: string | null;
  policies: string[];
  reviews?: ReviewAnswer[];
}

export interface PolicySetAnswer {
  version: number;
  policies: Record<string, string>;
  created_by: string;
  created_at: string | null;
}

export interface AuditRecordAnswer {
  seq: number;
  id: string;
  at: string;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  request: string | null;
  ticket: string | null;
  principal: string | null;
  policies: string[];
  details: Record<string, unknown>;
}

export interface AuditVerificationAnswer {
  ok: boolean;
  checked: number;
  first_bad?: { seq: number; id: string; fault: string; message: string };
}

/** A query string from the options that are set. */
export function query(params: Record<string, string | number | boolean | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== false) search.set(key, String(value));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

/** A path segment, escaped. */
export const seg = (value: string) => encodeURIComponent(value);

/** A session as the API shows it (`GET /v1/sessions/:id`); tokens are never part of it. */
export interface SessionAnswer {
  id: string;
  request: string;
  principal: string;
  privilege: string;
  ticket: string | null;
  tenant: string;
  cnf: { jkt: string };
  state: string;
  end_reason: string | null;
  ended_by: string | null;
  activated_at: string;
  hard_expires_at: string;
  ended_at: string | null;
  last_activity_at: string;
  /** Seconds without activity before the session ends; null: none. */
  idle_timeout: number | null;
  authorization_details: { type: string; privilege: string; actions: string[]; resources: string[] }[];
  audiences: string[];
  status: { status_list: { idx: number; uri: string } };
}

/** A trust record for workload token exchange (`/v1/federations`). */
export interface FederationAnswer {
  id: string;
  name: string;
  issuer: string;
  audience: string;
  jwks_uri: string | null;
  jwks: { keys: Record<string, unknown>[] } | null;
  algorithms: string[];
  /** In order: the first rule whose every condition holds names the principal (by id). */
  principal_mapping: { match: Record<string, string>; principal: string }[];
  context_claims: string[];
  task_claim: string;
  /** Seconds. */
  max_token_age: number;
  created_at: string;
}
