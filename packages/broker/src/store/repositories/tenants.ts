import type { Tenant, TenantKind } from '../../domain/principal.js';
import type { StoreHandle } from '../database.js';
import type { TenantRow } from '../schema.js';

export function toTenant(row: TenantRow): Tenant {
  return {
    id: row.id,
    name: row.name,
    displayName: row.display_name,
    timeZone: row.time_zone,
    createdAt: row.created_at,
    kind: row.kind as TenantKind,
    providerTenantId: row.provider_tenant_id,
  };
}

export async function insertTenant(h: StoreHandle, t: Tenant): Promise<void> {
  await h.db
    .insertInto('tenants')
    .values({
      id: t.id,
      name: t.name,
      display_name: t.displayName,
      time_zone: t.timeZone,
      created_at: t.createdAt,
      kind: t.kind,
      provider_tenant_id: t.providerTenantId,
    })
    .execute();
}

export async function findTenantById(h: StoreHandle, id: string): Promise<Tenant | undefined> {
  const row = await h.db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toTenant(row);
}

export async function findTenantByName(h: StoreHandle, name: string): Promise<Tenant | undefined> {
  const row = await h.db.selectFrom('tenants').selectAll().where('name', '=', name).executeTakeFirst();
  return row && toTenant(row);
}

/** A provider's customer tenants, by name. */
export async function listCustomerTenants(h: StoreHandle, providerTenantId: string): Promise<Tenant[]> {
  const rows = await h.db
    .selectFrom('tenants')
    .selectAll()
    .where('provider_tenant_id', '=', providerTenantId)
    .orderBy('name')
    .limit(1000)
    .execute();
  return rows.map(toTenant);
}
