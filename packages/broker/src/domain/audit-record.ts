/** A record as stored and as answered by the API. */
export interface AuditRecord {
  tenantId: string;
  seq: number;
  id: string;
  at: number;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  requestId: string | null;
  ticket: string | null;
  principalId: string | null;
  policies: string[];
  details: Record<string, unknown>;
  prevHash: string;
  /** `macVersion` 0: SHA-256 of the fields; 1: HMAC-SHA256 of them under the chain key. */
  hash: string;
  /** 0: written unkeyed (before the chain was keyed); 1: keyed. */
  macVersion: number;
}
