import { TetherError } from '@tether-broker/protocol';
import { GENESIS_HASH } from '../audit/chain.js';
import { insertAuditHead, recordAudit } from '../audit/record.js';
import { newId } from '../domain/ids.js';
import type { Principal, Tenant, TenantKind } from '../domain/principal.js';
import { inTransaction, isUniqueViolation, type StoreHandle, type TxHandle } from '../store/database.js';
import { insertPrincipal, insertPrincipalKey } from '../store/repositories/principals.js';
import { insertTenant } from '../store/repositories/tenants.js';

export function assertTimeZone(zone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    throw new TetherError('invalid_request', `unknown time zone ${JSON.stringify(zone)}`);
  }
}

/** A new tenant as `createTenantWithAdmin` makes it. */
export interface NewTenant {
  tenantName: string;
  displayName?: string | undefined;
  timeZone?: string | undefined;
  kind: TenantKind;
  providerTenantId: string | null;
  adminName: string;
  /** The first admin's public key; null when the admin enrols a passkey from an invitation. */
  adminKey: { kid: string; publicJwk: Record<string, unknown> } | null;
  /** Who made it, as the new tenant's audit chain names them. */
  actor: string;
}

/**
 * In one transaction: the tenant, the head of its audit chain, its first admin (and key), and
 * the audit records that open the chain. A name already taken is `already_exists`.
 */
export async function createTenantWithAdmin(
  store: StoreHandle,
  now: number,
  input: NewTenant,
  alsoInTransaction?: (tx: TxHandle, made: { tenant: Tenant; admin: Principal }) => Promise<void>,
): Promise<{ tenant: Tenant; admin: Principal }> {
  const timeZone = input.timeZone ?? 'UTC';
  assertTimeZone(timeZone);
  const tenant: Tenant = {
    id: newId('tenant'),
    name: input.tenantName,
    displayName: input.displayName ?? input.tenantName,
    timeZone,
    createdAt: now,
    kind: input.kind,
    providerTenantId: input.providerTenantId,
  };
  const admin: Principal = {
    id: newId('principal'),
    tenantId: tenant.id,
    name: input.adminName,
    kind: 'human',
    enabled: true,
    roles: ['admin'],
    attributes: {},
    createdAt: now,
    updatedAt: now,
  };
  const key = input.adminKey;
  await inTransaction(store, async (tx) => {
    try {
      await insertTenant(tx, tenant);
    } catch (err) {
      if (isUniqueViolation(err))
        throw new TetherError('already_exists', `a tenant named ${input.tenantName} already exists`);
      throw err;
    }
    await insertAuditHead(tx, tenant.id, GENESIS_HASH);
    await insertPrincipal(tx, admin);
    if (key) await insertPrincipalKey(tx, tenant.id, { principalId: admin.id, ...key, createdAt: now });
    await recordAudit(tx, tenant.id, now, {
      actor: input.actor,
      action: 'tenant.created',
      target: tenant.id,
      outcome: 'success',
      details: {
        name: tenant.name,
        time_zone: timeZone,
        kind: tenant.kind,
        ...(tenant.providerTenantId ? { provider: tenant.providerTenantId } : {}),
      },
    });
    await recordAudit(tx, tenant.id, now, {
      actor: input.actor,
      action: 'principal.created',
      target: admin.id,
      outcome: 'success',
      principalId: admin.id,
      details: { name: admin.name, kind: admin.kind, roles: admin.roles, keys: key ? [key.kid] : [] },
    });
    await alsoInTransaction?.(tx, { tenant, admin });
  });
  return { tenant, admin };
}
