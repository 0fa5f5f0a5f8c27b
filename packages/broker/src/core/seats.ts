import { TetherError } from '@tether-broker/protocol';
import type { Principal } from '../domain/principal.js';
import {
  namesApproverGroup,
  namesOperatorGroup,
  type Relationship,
  relationshipUsableAt,
} from '../domain/relationship.js';
import type { StoreHandle } from '../store/database.js';
import { groupIdsOf } from '../store/repositories/groups.js';
import type { BrokerContext } from './context.js';
import { readRelationshipsOf } from './relationship-trust.js';

/**
 * The relationships under which a provider operator's seat may act in its customer tenant at
 * `now`: active, within their window, between the seat's provider and customer, naming one of
 * the operator's groups (read live in the provider tenant) as requesters or as provider
 * approvers. With `privilegeId`, only those under which the seat may ask for it: naming the
 * privilege and one of the operator's groups as requesters. Answers nothing for a principal
 * that is not a seat.
 */
export async function relationshipsCovering(
  ctx: Pick<BrokerContext, 'store' | 'kek'>,
  seat: Principal,
  now: number,
  privilegeId?: string,
  /** The transaction to read in, when the caller holds one (SQLite has one writer connection). */
  h: StoreHandle = ctx.store,
): Promise<Relationship[]> {
  const home = seat.home;
  if (!home) return [];
  const groups = new Set(await groupIdsOf(h, home.tenantId, home.principalId));
  const relationships = await readRelationshipsOf(h, ctx.kek, seat.tenantId, {
    state: 'active',
    counterpart: home.tenantId,
  });
  return relationships.filter(
    (r) =>
      r.customerTenantId === seat.tenantId &&
      r.providerTenantId === home.tenantId &&
      relationshipUsableAt(r, now) &&
      (privilegeId === undefined
        ? namesOperatorGroup(r, groups) || namesApproverGroup(r, groups)
        : namesOperatorGroup(r, groups) && r.privilegeIds.includes(privilegeId)),
  );
}

/**
 * Refuses a seat no relationship covers any more (`not_covered_by_relationship`): checked on
 * every call a seat makes, so a relationship's end or the operator leaving its groups takes
 * the seat's standing away at once, whatever token it holds.
 */
export async function assertSeatCovered(
  ctx: Pick<BrokerContext, 'store' | 'kek'>,
  principal: Principal,
  now: number,
): Promise<void> {
  if (!principal.home) return;
  if ((await relationshipsCovering(ctx, principal, now)).length === 0)
    throw new TetherError(
      'not_covered_by_relationship',
      'no active relationship covers this operator in this customer tenant any more',
    );
}
