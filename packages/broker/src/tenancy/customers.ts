import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { createTenantWithAdmin } from '../core/new-tenant.js';
import { acceptPublicKey } from '../core/public-keys.js';
import type { Principal, Tenant } from '../domain/principal.js';
import { findTenantByName, listCustomerTenants } from '../store/repositories/tenants.js';

/** At most this many customers per provider. */
export const MAX_CUSTOMERS = 1000;

export interface NewCustomer {
  name: string;
  displayName?: string | undefined;
  timeZone?: string | undefined;
  /** The customer's first admin: their name, and their public key (its private half stays with them). */
  admin: { name: string; publicJwk: Record<string, unknown> };
}

/** Refuses a caller whose tenant is not a provider's. */
export function requireProviderTenant(caller: Caller): void {
  if (caller.tenant.kind !== 'provider')
    throw new TetherError('not_a_provider', `${caller.tenant.name} is not a provider tenant`);
}

/** Refuses anyone but an admin of a provider tenant. */
export function requireProviderAdmin(caller: Caller): void {
  requireRole(caller, 'admin');
  requireProviderTenant(caller);
}

/**
 * A provider's admin onboards a customer over the API: a customer tenant (its own audit chain,
 * policies, privileges, PEPs and keys), with its first admin, whose public key the customer
 * hands over. The provider gets no role in it: it cannot read or change the customer's records,
 * only propose relationships the customer's admin accepts. Audited in both chains.
 */
export async function addCustomer(
  ctx: BrokerContext,
  caller: Caller,
  input: NewCustomer,
): Promise<{ tenant: Tenant; admin: Principal }> {
  requireProviderAdmin(caller);
  const adminKey = await acceptPublicKey(input.admin.publicJwk);
  const count = (await listCustomerTenants(ctx.store, caller.tenant.id)).length;
  if (count >= MAX_CUSTOMERS)
    throw new TetherError('invalid_request', `a provider may have at most ${MAX_CUSTOMERS} customers`);
  const now = ctx.clock.now();
  return createTenantWithAdmin(
    ctx.store,
    now,
    {
      tenantName: input.name,
      displayName: input.displayName,
      timeZone: input.timeZone,
      kind: 'customer',
      providerTenantId: caller.tenant.id,
      adminName: input.admin.name,
      adminKey,
      actor: `provider:${caller.principal.id}`,
    },
    async (tx, made) => {
      await recordAudit(tx, caller.tenant.id, now, {
        actor: caller.principal.id,
        action: 'customer.created',
        target: made.tenant.id,
        outcome: 'success',
        details: { name: made.tenant.name, admin: made.admin.name, admin_key: adminKey.kid },
      });
    },
  );
}

/** The provider's customers (an admin or auditor of the provider). */
export async function listCustomers(ctx: BrokerContext, caller: Caller): Promise<Tenant[]> {
  requireRole(caller, 'admin', 'auditor');
  requireProviderTenant(caller);
  return listCustomerTenants(ctx.store, caller.tenant.id);
}

/** One of the caller's customers by name; `not_found` for any other tenant (its existence is not told). */
export async function customerOf(
  ctx: BrokerContext,
  providerTenantId: string,
  name: string,
): Promise<Tenant> {
  const tenant = await findTenantByName(ctx.store, name);
  if (!tenant || tenant.providerTenantId !== providerTenantId)
    throw new TetherError('not_found', `no customer ${JSON.stringify(name)} of this provider`);
  return tenant;
}
