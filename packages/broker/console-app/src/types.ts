/** The parts of the `/v1` and `/console/api` answers the console reads. */

export interface Me {
  principal: { id: string; name: string; roles: string[] };
  tenant: string;
  csrf: string;
}

export interface Privilege {
  id: string;
  name: string;
  actions: string[];
  resources: string[];
}

export interface AccessRequest {
  id: string;
  principal: string;
  privilege: string;
  state: string;
  ticket?: string | null;
  justification: string;
  duration: number;
}

export interface Session {
  id: string;
  principal: string;
  privilege: string;
  state: string;
  ticket?: string | null;
  hard_expires_at: string;
  end_reason?: string | null;
}

export interface Receipt {
  state: string;
  enforced: boolean;
  peps: { name: string; enforced_at?: string | null }[];
  pending: string[];
}

export interface AuditRecord {
  at: string;
  action: string;
  outcome: string;
  actor: string;
}

export interface Recording {
  cast: string;
  intact: boolean;
}

/** What the signed-in views show: the tenant as the person may see it. */
export interface Tenant {
  requests: AccessRequest[];
  sessions: Session[];
  /** Principal id → name. */
  names: Map<string, string>;
  /** Privilege id → privilege (every one, to name those in requests and sessions). */
  privileges: Map<string, Privilege>;
  /** The privileges the person may ask for. */
  eligible: Privilege[];
}
