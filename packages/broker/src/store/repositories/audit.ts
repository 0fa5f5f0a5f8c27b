import type { AuditRecord } from '../../domain/audit-record.js';
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
    macVersion: row.mac_version,
  };
}

/** A chain's end as the store records it, and the id of the key it is keyed with (null: not yet). */
export interface AuditHead {
  seq: number;
  hash: string;
  macKey: string | null;
}

/** The id of the audit key new chains are keyed with, as the store records it. */
export async function readStoreAuditKeyId(h: StoreHandle): Promise<string | undefined> {
  const row = await h.db
    .selectFrom('audit_keys')
    .select('id')
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .executeTakeFirst();
  return row?.id;
}

export async function insertStoreAuditKeyId(h: StoreHandle, id: string, now: number): Promise<void> {
  await h.db
    .insertInto('audit_keys')
    .values({ id, created_at: now })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

/** Writes a tenant's empty chain head, keyed with `macKey` (see audit/record.ts, `insertAuditHead`). */
export async function insertAuditHeadRow(
  h: StoreHandle,
  tenantId: string,
  hash: string,
  macKey: string | null,
): Promise<void> {
  await h.db
    .insertInto('audit_heads')
    .values({ tenant_id: tenantId, seq: 0, hash, mac_key: macKey })
    .execute();
}

/** Reads the head of a tenant's chain and locks it: appends to one chain are serialised. */
export async function lockAuditHead(tx: TxHandle, tenantId: string): Promise<AuditHead | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('audit_heads').select(['seq', 'hash', 'mac_key']).where('tenant_id', '=', tenantId),
  ).executeTakeFirst();
  return row && { seq: row.seq, hash: row.hash, macKey: row.mac_key };
}

export async function readAuditHead(h: StoreHandle, tenantId: string): Promise<AuditHead | undefined> {
  const row = await h.db
    .selectFrom('audit_heads')
    .select(['seq', 'hash', 'mac_key'])
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  return row && { seq: row.seq, hash: row.hash, macKey: row.mac_key };
}

/** Every tenant's chain head (broker-wide events are recorded in each tenant's chain). */
export async function listAuditHeads(h: StoreHandle): Promise<(AuditHead & { tenantId: string })[]> {
  const rows = await h.db
    .selectFrom('audit_heads')
    .select(['tenant_id', 'seq', 'hash', 'mac_key'])
    .orderBy('tenant_id')
    .execute();
  return rows.map((r) => ({ tenantId: r.tenant_id, seq: r.seq, hash: r.hash, macKey: r.mac_key }));
}

/** Keys the chain from its current head on (see audit/checkpoints.ts, `sealLegacyChains`). */
export async function setAuditHeadKey(tx: TxHandle, tenantId: string, macKey: string): Promise<void> {
  await tx.db.updateTable('audit_heads').set({ mac_key: macKey }).where('tenant_id', '=', tenantId).execute();
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
    mac_version: record.macVersion,
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

/** A checkpoint as stored: an authenticated snapshot of a chain's head. */
export interface AuditCheckpoint {
  tenantId: string;
  seq: number;
  hash: string;
  at: number;
  kind: string;
  keyId: string;
  tag: string;
}

/** Stores a checkpoint; a second one at the same position changes nothing. */
export async function insertAuditCheckpoint(h: StoreHandle, cp: AuditCheckpoint): Promise<void> {
  await h.db
    .insertInto('audit_checkpoints')
    .values({
      tenant_id: cp.tenantId,
      seq: cp.seq,
      hash: cp.hash,
      at: cp.at,
      kind: cp.kind,
      key_id: cp.keyId,
      tag: cp.tag,
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'seq']).doNothing())
    .execute();
}

/**
 * The checkpoints verification uses: the seal of the unkeyed prefix, and the latest one (which
 * bounds truncation). Older ones add nothing a record's MAC does not already prove, and there
 * is one per timer tick; they are not read.
 */
export async function listAuditCheckpoints(h: StoreHandle, tenantId: string): Promise<AuditCheckpoint[]> {
  const latest = h.db
    .selectFrom('audit_checkpoints')
    .select((eb) => eb.fn.max('seq').as('seq'))
    .where('tenant_id', '=', tenantId);
  const rows = await h.db
    .selectFrom('audit_checkpoints')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where((eb) => eb.or([eb('kind', '=', 'legacy_seal'), eb('seq', '=', latest)]))
    .orderBy('seq')
    .execute();
  return rows.map((r) => ({
    tenantId: r.tenant_id,
    seq: r.seq,
    hash: r.hash,
    at: r.at,
    kind: r.kind,
    keyId: r.key_id,
    tag: r.tag,
  }));
}

/** The position of each tenant's latest checkpoint. */
export async function latestCheckpointSeqs(h: StoreHandle): Promise<Map<string, number>> {
  const rows = await h.db
    .selectFrom('audit_checkpoints')
    .select(['tenant_id', (eb) => eb.fn.max('seq').as('seq')])
    .groupBy('tenant_id')
    .execute();
  return new Map(rows.map((r) => [r.tenant_id, Number(r.seq)]));
}

/**
 * A tenant's records by or about any of `principalIds` (a provider's view of its operators'
 * seats in a customer tenant), oldest first from `afterSeq`.
 */
export async function listAuditRecordsOfPrincipals(
  h: StoreHandle,
  tenantId: string,
  principalIds: string[],
  afterSeq: number,
  limit: number,
): Promise<AuditRecord[]> {
  if (principalIds.length === 0) return [];
  const rows = await h.db
    .selectFrom('audit_records')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where((eb) => eb.or([eb('principal_id', 'in', principalIds), eb('actor', 'in', principalIds)]))
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();
  return rows.map(toAuditRecord);
}
