import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';

// The package is CommonJS with a typed default export; unwrap it once.
const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined;

/** The `prev_hash` of a tenant's first record. */
export const GENESIS_HASH = '0'.repeat(64);

/** What a caller records: who did what to which target, and how it ended. */
export interface AuditEntry {
  actor: string;
  action: string;
  target: string;
  outcome: 'success' | 'refused' | 'failure';
  requestId?: string | null;
  ticket?: string | null;
  principalId?: string | null;
  /** Policy ids that decided, when a policy decided. */
  policies?: string[];
  /** Extra, non-secret facts (never tokens or keys). */
  details?: Record<string, unknown>;
}

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
  hash: string;
}

/**
 * SHA-256 over the RFC 8785 (JCS) canonical JSON of every field but `hash` itself. Any
 * change to a field, to the sequence number or to the link to the previous record changes it.
 */
export function hashRecord(record: Omit<AuditRecord, 'hash'>): string {
  const canonical = canonicalize({
    tenant_id: record.tenantId,
    seq: record.seq,
    id: record.id,
    at: record.at,
    actor: record.actor,
    action: record.action,
    target: record.target,
    outcome: record.outcome,
    request_id: record.requestId,
    ticket: record.ticket,
    principal_id: record.principalId,
    policies: record.policies,
    details: record.details,
    prev_hash: record.prevHash,
  });
  if (canonical === undefined) throw new Error('audit record cannot be canonicalised');
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/** Builds the next record of a chain whose head is `(prevSeq, prevHash)`. */
export function chainNext(
  head: { seq: number; hash: string },
  fields: { tenantId: string; id: string; at: number; entry: AuditEntry },
): AuditRecord {
  const { entry } = fields;
  const unsigned: Omit<AuditRecord, 'hash'> = {
    tenantId: fields.tenantId,
    seq: head.seq + 1,
    id: fields.id,
    at: fields.at,
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    outcome: entry.outcome,
    requestId: entry.requestId ?? null,
    ticket: entry.ticket ?? null,
    principalId: entry.principalId ?? null,
    policies: entry.policies ?? [],
    details: entry.details ?? {},
    prevHash: head.hash,
  };
  return { ...unsigned, hash: hashRecord(unsigned) };
}
