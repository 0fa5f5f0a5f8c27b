import type { AuditRecord } from '../../audit/chain.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { AuditRecordRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

export function toAuditRecord(row: AuditRecordRow): AuditRecord {
  return {
    tenantId: row.tenant_id,
    seq: row.seq,
    id: row.id,
    at: row.at,
    actor: row.actor,
    action: row.action,
    target: row.target,
    outcome: row.outcome,
    requestId: row.request_id,
    ticket: row.ticket,
    principalId: row.principal_id,
    policies: fromJson<string[]>(row.policies),
    details: fromJson<Record<string, unknown>>(row.details),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

export async function insertAuditHead(h: StoreHandle, tenantId: string, hash: string): Promise<void> {
  await h.db.insertInto('audit_heads').values({ tenant_id: tenantId, seq: 0, hash }).execute();
}

/** Reads the head of a tenant's chain and locks it: appends to one chain are serialised. */
export async function lockAuditHead(
  tx: TxHandle,
  tenantId: string,
): Promise<{ seq: number; hash: string } | undefined> {
  return forUpdate(
    tx,
    tx.db.selectFrom('audit_heads').select(['seq', 'hash']).where('tenant_id', '=', tenantId),
  ).executeTakeFirst();
}

export async function readAuditHead(
  h: StoreHandle,
  tenantId: string,
): Promise<{ seq: number; hash: string } | undefined> {
  return h.db
    .selectFrom('audit_heads')
    .select(['seq', 'hash'])
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
}

function toRow(record: AuditRecord): AuditRecordRow {
  return {
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
    policies: toJson(record.policies),
    details: toJson(record.details),
    prev_hash: record.prevHash,
    hash: record.hash,
  };
}

export async function appendAuditRecord(tx: TxHandle, record: AuditRecord): Promise<void> {
  await tx.db.insertInto('audit_records').values(toRow(record)).execute();
  await tx.db
    .updateTable('audit_heads')
    .set({ seq: record.seq, hash: record.hash })
    .where('tenant_id', '=', record.tenantId)
    .execute();
}

/** Rows per INSERT: well inside both dialects' limit on bound parameters. */
const INSERT_CHUNK = 500;

/** Appends consecutive records of one tenant's chain (already linked) and moves the head once. */
export async function appendAuditRecords(tx: TxHandle, records: readonly AuditRecord[]): Promise<void> {
  const last = records.at(-1);
  if (!last) return;
  for (let i = 0; i < records.length; i += INSERT_CHUNK)
    await tx.db
      .insertInto('audit_records')
      .values(records.slice(i, i + INSERT_CHUNK).map(toRow))
      .execute();
  await tx.db
    .updateTable('audit_heads')
    .set({ seq: last.seq, hash: last.hash })
    .where('tenant_id', '=', last.tenantId)
    .execute();
}

export interface AuditFilter {
  requestId?: string;
  /** Records about this record (a session id: its lifecycle and the decisions made on it). */
  target?: string;
  ticket?: string;
  principalId?: string;
  since?: number;
  until?: number;
  afterSeq?: number;
  limit: number;
}

export async function listAuditRecords(
  h: StoreHandle,
  tenantId: string,
  f: AuditFilter,
): Promise<AuditRecord[]> {
  let q = h.db.selectFrom('audit_records').selectAll().where('tenant_id', '=', tenantId);
  if (f.requestId) q = q.where('request_id', '=', f.requestId);
  if (f.target) q = q.where('target', '=', f.target);
  if (f.ticket) q = q.where('ticket', '=', f.ticket);
  if (f.principalId)
    q = q.where((eb) => eb.or([eb('principal_id', '=', f.principalId!), eb('actor', '=', f.principalId!)]));
  if (f.since !== undefined) q = q.where('at', '>=', f.since);
  if (f.until !== undefined) q = q.where('at', '<', f.until);
  if (f.afterSeq !== undefined) q = q.where('seq', '>', f.afterSeq);
  const rows = await q.orderBy('seq').limit(f.limit).execute();
  return rows.map(toAuditRecord);
}

/**
 * One page of the raw chain for verification, by physical sequence order. Uses an offset
 * rather than `seq > n` so that duplicated sequence numbers are seen, not skipped.
 */
export async function readChainPage(
  h: StoreHandle,
  tenantId: string,
  offset: number,
  limit: number,
): Promise<AuditRecord[]> {
  const rows = await h.db
    .selectFrom('audit_records')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('seq')
    .orderBy('id')
    .limit(limit)
    .offset(offset)
    .execute();
  return rows.map(toAuditRecord);
}
