import type { Group } from '../../domain/principal.js';
import type { StoreHandle } from '../database.js';
import type { GroupRow } from '../schema.js';

function toGroup(row: GroupRow): Group {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    description: row.description,
    createdAt: row.created_at,
  };
}

export async function insertGroup(h: StoreHandle, g: Group): Promise<void> {
  await h.db
    .insertInto('groups')
    .values({
      id: g.id,
      tenant_id: g.tenantId,
      name: g.name,
      description: g.description,
      created_at: g.createdAt,
    })
    .execute();
}

export async function findGroup(h: StoreHandle, tenantId: string, id: string): Promise<Group | undefined> {
  const row = await h.db
    .selectFrom('groups')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toGroup(row);
}

export async function findGroupByName(
  h: StoreHandle,
  tenantId: string,
  name: string,
): Promise<Group | undefined> {
  const row = await h.db
    .selectFrom('groups')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row && toGroup(row);
}

export async function listGroups(h: StoreHandle, tenantId: string): Promise<Group[]> {
  const rows = await h.db
    .selectFrom('groups')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('name')
    .execute();
  return rows.map(toGroup);
}

export async function deleteGroup(h: StoreHandle, tenantId: string, id: string): Promise<void> {
  await h.db
    .deleteFrom('group_members')
    .where('tenant_id', '=', tenantId)
    .where('group_id', '=', id)
    .execute();
  await h.db.deleteFrom('groups').where('tenant_id', '=', tenantId).where('id', '=', id).execute();
}

export async function addGroupMember(
  h: StoreHandle,
  tenantId: string,
  groupId: string,
  principalId: string,
): Promise<boolean> {
  const result = await h.db
    .insertInto('group_members')
    .values({ tenant_id: tenantId, group_id: groupId, principal_id: principalId })
    .onConflict((oc) => oc.columns(['group_id', 'principal_id']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function removeGroupMember(
  h: StoreHandle,
  tenantId: string,
  groupId: string,
  principalId: string,
): Promise<boolean> {
  const result = await h.db
    .deleteFrom('group_members')
    .where('tenant_id', '=', tenantId)
    .where('group_id', '=', groupId)
    .where('principal_id', '=', principalId)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function listGroupMembers(h: StoreHandle, tenantId: string, groupId: string): Promise<string[]> {
  const rows = await h.db
    .selectFrom('group_members')
    .select('principal_id')
    .where('tenant_id', '=', tenantId)
    .where('group_id', '=', groupId)
    .orderBy('principal_id')
    .execute();
  return rows.map((r) => r.principal_id);
}

export async function groupIdsOf(h: StoreHandle, tenantId: string, principalId: string): Promise<string[]> {
  const rows = await h.db
    .selectFrom('group_members')
    .select('group_id')
    .where('tenant_id', '=', tenantId)
    .where('principal_id', '=', principalId)
    .orderBy('group_id')
    .execute();
  return rows.map((r) => r.group_id);
}

/** Names of the groups a principal belongs to: Cedar sees groups by name (`Tether::Group::"approvers"`). */
export async function groupNamesOf(h: StoreHandle, tenantId: string, principalId: string): Promise<string[]> {
  const rows = await h.db
    .selectFrom('group_members')
    .innerJoin('groups', 'groups.id', 'group_members.group_id')
    .select('groups.name')
    .where('group_members.tenant_id', '=', tenantId)
    .where('group_members.principal_id', '=', principalId)
    .orderBy('groups.name')
    .execute();
  return rows.map((r) => r.name);
}
