import { createHash, createHmac, type KeyObject } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import type { AuditRecord } from '../domain/audit-record.js';

export type { AuditRecord } from '../domain/audit-record.js';

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

/** The MAC version of keyed records. */
export const KEYED = 1;
/** The MAC version of records written before chains were keyed. */
export const UNKEYED = 0;

/** The fields a record's hash or MAC covers: all but the hash itself and its version. */
export type RecordFields = Omit<AuditRecord, 'hash' | 'macVersion'>;

function canonicalFields(record: RecordFields, extra: Record<string, unknown> = {}): string {
  const canonical = canonicalize({
    ...extra,
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
  return canonical;
}

/**
 * The unkeyed hash of records written before chains were keyed: SHA-256 over the RFC 8785 (JCS)
 * canonical JSON of every field but `hash`. Anyone can recompute it, so it proves nothing
 * against a database writer; verification accepts it only in a prefix sealed by a checkpoint.
 */
export function hashRecord(record: RecordFields): string {
  return createHash('sha256').update(canonicalFields(record), 'utf8').digest('hex');
}

/**
 * The MAC of a keyed record: HMAC-SHA256 under the chain key over the same canonical JSON, with
 * the MAC version inside it (so an unkeyed hash can never pass for a MAC, nor the reverse).
 * Without the KEK nobody can compute it, so nobody can rewrite a record and its successors.
 */
export function macRecord(record: RecordFields, key: KeyObject): string {
  return createHmac('sha256', key)
    .update(canonicalFields(record, { mac_version: KEYED }), 'utf8')
    .digest('hex');
}

/**
 * Builds the next record of a chain whose head is `(prevSeq, prevHash)`: keyed (MAC under `key`)
 * when a key is given, else unkeyed (only for chains not keyed yet: `tether init` runs without the KEK).
 */
export function chainNext(
  head: { seq: number; hash: string },
  fields: { tenantId: string; id: string; at: number; entry: AuditEntry },
  key?: KeyObject,
): AuditRecord {
  const { entry } = fields;
  const unsigned: RecordFields = {
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
  return key
    ? { ...unsigned, hash: macRecord(unsigned, key), macVersion: KEYED }
    : { ...unsigned, hash: hashRecord(unsigned), macVersion: UNKEYED };
}
