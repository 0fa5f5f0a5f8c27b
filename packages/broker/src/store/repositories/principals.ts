import type { PrincipalKind, Role } from '@tether-broker/protocol';
import type { Principal, PrincipalKey } from '../../domain/principal.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { PrincipalRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

export function toPrincipal(row: PrincipalRow): Principal {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    kind: row.kind as PrincipalKind,
    enabled: row.enabled === 1,
    roles: fromJson<Role[]>(row.roles),
    attributes: fromJson<Record<string, string>>(row.attributes),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ...(row.contract_starts_at === null && row.contract_ends_at === null
      ? {}
      : { contract: { startsAt: row.contract_starts_at, endsAt: row.contract_ends_at } }),
    ...(row.home_tenant_id !== null && row.home_principal_id !== null
      ? { home: { tenantId: row.home_tenant_id, principalId: row.home_principal_id } }
      : {}),
  };
}

function toRow(p: Principal): PrincipalRow {
  return {
    id: p.id,
    tenant_id: p.tenantId,
    name: p.name,
    kind: p.kind,
    enabled: p.enabled ? 1 : 0,
    roles: toJson(p.roles),
    attributes: toJson(p.attributes),
    created_at: p.createdAt,
    updated_at: p.updatedAt,
    contract_starts_at: p.contract?.startsAt ?? null,
    contract_ends_at: p.contract?.endsAt ?? null,
    home_tenant_id: p.home?.tenantId ?? null,
    home_principal_id: p.home?.principalId ?? null,
  };
}

export async function insertPrincipal(h: StoreHandle, p: Principal): Promise<void> {
  await h.db.insertInto('principals').values(toRow(p)).execute();
}

export async function updatePrincipal(h: StoreHandle, p: Principal): Promise<void> {
  const { id, tenant_id, created_at, ...changes } = toRow(p);
  await h.db
    .updateTable('principals')
    .set(changes)
    .where('id', '=', id)
    .where('tenant_id', '=', tenant_id)
    .execute();
}

/** Looks a principal up across tenants: only for authentication, where the id is all we have. */
export async function findPrincipalAnyTenant(h: StoreHandle, id: string): Promise<Principal | undefined> {
  const row = await h.db.selectFrom('principals').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toPrincipal(row);
}

export async function findPrincipal(
  h: StoreHandle,
  tenantId: string,
  id: string,
): Promise<Principal | undefined> {
  const row = await h.db
    .selectFrom('principals')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toPrincipal(row);
}

export async function findPrincipalByName(
  h: StoreHandle,
  tenantId: string,
  name: string,
): Promise<Principal | undefined> {
  const row = await h.db
    .selectFrom('principals')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row && toPrincipal(row);
}

export async function listPrincipals(h: StoreHandle, tenantId: string): Promise<Principal[]> {
  const rows = await h.db
    .selectFrom('principals')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('name')
    .execute();
  return rows.map(toPrincipal);
}

export async function insertPrincipalKey(h: StoreHandle, tenantId: string, key: PrincipalKey): Promise<void> {
  await h.db
    .insertInto('principal_keys')
    .values({
      tenant_id: tenantId,
      principal_id: key.principalId,
      kid: key.kid,
      public_jwk: toJson(key.publicJwk),
      created_at: key.createdAt,
    })
    .execute();
}

export async function deletePrincipalKey(
  h: StoreHandle,
  tenantId: string,
  principalId: string,
  kid: string,
): Promise<boolean> {
  const result = await h.db
    .deleteFrom('principal_keys')
    .where('tenant_id', '=', tenantId)
    .where('principal_id', '=', principalId)
    .where('kid', '=', kid)
    .executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function listPrincipalKeys(h: StoreHandle, principalId: string): Promise<PrincipalKey[]> {
  const rows = await h.db
    .selectFrom('principal_keys')
    .selectAll()
    .where('principal_id', '=', principalId)
    .orderBy('created_at')
    .execute();
  return rows.map((r) => ({
    principalId: r.principal_id,
    kid: r.kid,
    publicJwk: fromJson<Record<string, unknown>>(r.public_jwk),
    createdAt: r.created_at,
  }));
}

/** Reads a principal for a change, holding its row lock so concurrent edits apply one after another. */
export async function lockPrincipal(
  tx: TxHandle,
  tenantId: string,
  id: string,
): Promise<Principal | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('principals').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id),
  ).executeTakeFirst();
  return row && toPrincipal(row);
}

/**
 * The keys a principal authenticates with: its own, or, for a provider operator's seat in a
 * customer tenant, its home principal's (none while that principal is disabled or gone). The
 * seat holds no key of its own, so removing a key at home, or disabling the operator, reaches
 * every seat at once.
 */
export async function listAuthenticatingKeys(h: StoreHandle, principal: Principal): Promise<PrincipalKey[]> {
  if (!principal.home) return listPrincipalKeys(h, principal.id);
  const home = await findPrincipal(h, principal.home.tenantId, principal.home.principalId);
  if (!home?.enabled || home.home) return [];
  return listPrincipalKeys(h, home.id);
}

/** A provider operator's seat in a customer tenant, if it has one. */
/** The seats a provider operator holds in its provider's customer tenants (id and tenant). */
export async function listSeatsOf(
  h: StoreHandle,
  homeTenantId: string,
  homePrincipalId: string,
): Promise<{ id: string; tenantId: string }[]> {
  const rows = await h.db
    .selectFrom('principals')
    .select(['id', 'tenant_id'])
    .where('home_tenant_id', '=', homeTenantId)
    .where('home_principal_id', '=', homePrincipalId)
    .execute();
  return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id }));
}

export async function findSeat(
  h: StoreHandle,
  customerTenantId: string,
  homePrincipalId: string,
): Promise<Principal | undefined> {
  const row = await h.db
    .selectFrom('principals')
    .selectAll()
    .where('tenant_id', '=', customerTenantId)
    .where('home_principal_id', '=', homePrincipalId)
    .executeTakeFirst();
  return row && toPrincipal(row);
}
