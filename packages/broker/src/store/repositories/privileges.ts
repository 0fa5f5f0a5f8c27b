import type { ApprovalRule, BindingRule, Privilege, TicketRule } from '../../domain/privilege.js';
import type { RecordingMode } from '../../domain/recording.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { PrivilegeRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

function toPrivilege(row: PrivilegeRow): Privilege {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    description: row.description,
    actions: fromJson<string[]>(row.actions),
    resources: fromJson<string[]>(row.resources),
    audiences: fromJson<string[]>(row.audiences),
    maxDurationSeconds: row.max_duration_s,
    tokenTtlSeconds: row.token_ttl_s,
    idleTimeoutSeconds: row.idle_timeout_s,
    approval: fromJson<ApprovalRule>(row.approval),
    ticket: fromJson<TicketRule>(row.ticket),
    binding: fromJson<BindingRule>(row.binding),
    attributes: fromJson<Record<string, string>>(row.attributes),
    connectors: fromJson<string[]>(row.connectors),
    recording: row.recording as RecordingMode,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toRow(p: Privilege): PrivilegeRow {
  return {
    id: p.id,
    tenant_id: p.tenantId,
    name: p.name,
    description: p.description,
    actions: toJson(p.actions),
    resources: toJson(p.resources),
    audiences: toJson(p.audiences),
    max_duration_s: p.maxDurationSeconds,
    token_ttl_s: p.tokenTtlSeconds,
    idle_timeout_s: p.idleTimeoutSeconds,
    approval: toJson(p.approval),
    ticket: toJson(p.ticket),
    binding: toJson(p.binding),
    attributes: toJson(p.attributes),
    connectors: toJson(p.connectors),
    recording: p.recording,
    created_at: p.createdAt,
    updated_at: p.updatedAt,
  };
}

export async function insertPrivilege(h: StoreHandle, p: Privilege): Promise<void> {
  await h.db.insertInto('privileges').values(toRow(p)).execute();
}

export async function updatePrivilege(h: StoreHandle, p: Privilege): Promise<void> {
  const { id, tenant_id, created_at, ...changes } = toRow(p);
  await h.db
    .updateTable('privileges')
    .set(changes)
    .where('id', '=', id)
    .where('tenant_id', '=', tenant_id)
    .execute();
}

export async function deletePrivilege(h: StoreHandle, tenantId: string, id: string): Promise<void> {
  await h.db.deleteFrom('privileges').where('tenant_id', '=', tenantId).where('id', '=', id).execute();
}

export async function findPrivilege(
  h: StoreHandle,
  tenantId: string,
  id: string,
): Promise<Privilege | undefined> {
  const row = await h.db
    .selectFrom('privileges')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toPrivilege(row);
}

export async function findPrivilegeByName(
  h: StoreHandle,
  tenantId: string,
  name: string,
): Promise<Privilege | undefined> {
  const row = await h.db
    .selectFrom('privileges')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row && toPrivilege(row);
}

export async function listPrivileges(h: StoreHandle, tenantId: string): Promise<Privilege[]> {
  const rows = await h.db
    .selectFrom('privileges')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('name')
    .execute();
  return rows.map(toPrivilege);
}

/** Reads a privilege for a change, holding its row lock so concurrent edits apply one after another. */
export async function lockPrivilege(
  tx: TxHandle,
  tenantId: string,
  id: string,
): Promise<Privilege | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('privileges').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id),
  ).executeTakeFirst();
  return row && toPrivilege(row);
}
