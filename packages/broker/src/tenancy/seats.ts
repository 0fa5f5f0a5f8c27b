import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { readRelationshipsOf } from '../core/relationship-trust.js';
import { relationshipsCovering } from '../core/seats.js';
import { newId } from '../domain/ids.js';
import type { Principal, Tenant } from '../domain/principal.js';
import {
  namesApproverGroup,
  namesOperatorGroup,
  type Relationship,
  relationshipUsableAt,
} from '../domain/relationship.js';
import { inTransaction, isUniqueViolation } from '../store/database.js';
import { groupIdsOf } from '../store/repositories/groups.js';
import { findSeat, insertPrincipal } from '../store/repositories/principals.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { findTenantById } from '../store/repositories/tenants.js';

/** A customer a provider operator may ask in, and what they may ask for there. */
export interface EligibleCustomer {
  customer: Tenant;
  privileges: { name: string; relationship: string; endsAt: number }[];
}

function requireProviderCaller(caller: Caller): void {
  if (caller.tenant.kind !== 'provider')
    throw new TetherError('not_a_provider', `${caller.tenant.name} is not a provider tenant`);
  if (caller.principal.home) throw new TetherError('forbidden', 'a seat cannot take another seat');
}

/**
 * The active relationships naming one of the caller's groups now: as requesters, or (with
 * `approving`) as requesters or provider approvers.
 */
async function relationshipsOfOperator(
  ctx: BrokerContext,
  caller: Caller,
  approving = false,
): Promise<Relationship[]> {
  const now = ctx.clock.now();
  const groups = new Set(await groupIdsOf(ctx.store, caller.tenant.id, caller.principal.id));
  const relationships = await readRelationshipsOf(ctx.store, ctx.kek, caller.tenant.id, { state: 'active' });
  return relationships.filter(
    (r) =>
      r.providerTenantId === caller.tenant.id &&
      relationshipUsableAt(r, now) &&
      (namesOperatorGroup(r, groups) || (approving && namesApproverGroup(r, groups))),
  );
}

/**
 * The customers a provider operator may ask in and the privileges they may ask for, from the
 * relationships naming one of their groups (`tether customers`). Whether the customer's
 * policies forbid a particular ask is decided when it is asked.
 */
export async function eligibleCustomers(ctx: BrokerContext, caller: Caller): Promise<EligibleCustomer[]> {
  requireProviderCaller(caller);
  const byCustomer = new Map<string, EligibleCustomer>();
  for (const r of await relationshipsOfOperator(ctx, caller)) {
    let entry = byCustomer.get(r.customerTenantId);
    if (!entry) {
      const customer = await findTenantById(ctx.store, r.customerTenantId);
      if (!customer) continue;
      entry = { customer, privileges: [] };
      byCustomer.set(r.customerTenantId, entry);
    }
    for (const id of r.privilegeIds) {
      const privilege = await findPrivilege(ctx.store, r.customerTenantId, id);
      if (privilege) entry.privileges.push({ name: privilege.name, relationship: r.name, endsAt: r.endsAt });
    }
  }
  return [...byCustomer.values()].sort((a, b) => a.customer.name.localeCompare(b.customer.name));
}

/**
 * A provider operator's seat in a customer tenant, made on first use: the principal the
 * operator acts as there, with their own key (the seat has none of its own), no role, no
 * group. Only while a relationship covers the operator; the customer's chain records the seat
 * being made, the provider's that its operator took it.
 */
export async function takeSeat(
  ctx: BrokerContext,
  caller: Caller,
  customerName: string,
): Promise<{ customer: Tenant; seat: Principal }> {
  requireProviderCaller(caller);
  const now = ctx.clock.now();
  // A provider approver takes a seat too: it is where they approve the requests they are asked to.
  const relationships = await relationshipsOfOperator(ctx, caller, true);
  const customers = await Promise.all(
    [...new Set(relationships.map((r) => r.customerTenantId))].map((id) => findTenantById(ctx.store, id)),
  );
  const customer = customers.find((t) => t?.name === customerName);
  // The same answer for a tenant that does not exist, another provider's customer, and a
  // customer no relationship of the operator's covers: nothing is told about the others.
  if (!customer)
    throw new TetherError(
      'not_covered_by_relationship',
      `no active relationship lets ${caller.principal.name} act in ${JSON.stringify(customerName)}`,
    );
  const existing = await findSeat(ctx.store, customer.id, caller.principal.id);
  if (existing) return { customer, seat: existing };
  const seat: Principal = {
    id: newId('principal'),
    tenantId: customer.id,
    // Names are unique within a tenant; the provider's name marks whose operator it is.
    name: `${caller.principal.name}@${caller.tenant.name}`,
    kind: caller.principal.kind,
    enabled: true,
    roles: [],
    attributes: {},
    createdAt: now,
    updatedAt: now,
    home: { tenantId: caller.tenant.id, principalId: caller.principal.id },
  };
  try {
    await inTransaction(ctx.store, async (tx) => {
      await insertPrincipal(tx, seat);
      await recordAudit(tx, customer.id, now, {
        actor: `provider:${caller.principal.id}`,
        action: 'principal.created',
        target: seat.id,
        outcome: 'success',
        principalId: seat.id,
        details: {
          name: seat.name,
          kind: seat.kind,
          seat_of: { provider: caller.tenant.name, principal: caller.principal.name },
        },
      });
      await recordAudit(tx, caller.tenant.id, now, {
        actor: caller.principal.id,
        action: 'seat.taken',
        target: seat.id,
        outcome: 'success',
        principalId: caller.principal.id,
        details: { customer: customer.name, seat: seat.name },
      });
    });
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    // Taken concurrently (the same operator), or a customer principal already has that name.
    const raced = await findSeat(ctx.store, customer.id, caller.principal.id);
    if (raced) return { customer, seat: raced };
    throw new TetherError(
      'already_exists',
      `${customer.name} already has a principal named ${seat.name}; its admin must rename it first`,
    );
  }
  // Covered right now (the relationship was read before the insert; re-read to be sure).
  if ((await relationshipsCovering(ctx, seat, now)).length === 0)
    throw new TetherError('not_covered_by_relationship', 'the relationship ended meanwhile');
  return { customer, seat };
}
