import { TetherError } from '@tether-broker/protocol';
import type { Caller } from '../core/context.js';
import type { Privilege } from '../domain/privilege.js';
import {
  assertRelationshipUsable,
  namesApproverGroup,
  providerApproval,
  type Relationship,
} from '../domain/relationship.js';
import type { AccessRequest, Review } from '../domain/request.js';
import type { TxHandle } from '../store/database.js';
import { groupIdsOf } from '../store/repositories/groups.js';
import { findPrincipal } from '../store/repositories/principals.js';

/**
 * The two sides of a review under a provider relationship (issue 14, "N of M per side"): the
 * customer's own approvers, as its privilege names them, and the provider's approvers, members
 * of the relationship's approver groups in the provider tenant, each reviewing through their
 * seat in the customer tenant. A seat is never on the customer's side: the customer cannot
 * make a provider's person one of its own approvers by naming the seat.
 */

/** The reviews with their side: a review by a seat is the provider's. */
export async function withSides(
  tx: TxHandle,
  tenantId: string,
  reviews: readonly Review[],
): Promise<Review[]> {
  return Promise.all(
    reviews.map(async (r) => {
      const reviewer = await findPrincipal(tx, tenantId, r.reviewerId);
      return reviewer?.home ? { ...r, side: 'provider' as const } : r;
    }),
  );
}

/**
 * How many approvals each side must give now: the request's own count (fixed when it was made)
 * or the relationship's current one when a narrowing raised it since, on the customer's side;
 * the relationship's current count on the provider's.
 */
export function approvalsRequired(
  request: AccessRequest,
  relationship: Relationship | undefined,
): { customer: number; provider: number } {
  if (!relationship) return { customer: request.approvalsRequired, provider: 0 };
  return {
    customer: Math.max(request.approvalsRequired, relationship.approval.customer),
    provider: providerApproval(relationship.approval).count,
  };
}

/**
 * A seat reviews only as a provider approver: the request was made under a relationship of
 * the seat's provider that is usable now, asks provider approvals, and names one of the
 * operator's groups (read live at home) among its approvers. Throws `approver_not_eligible`
 * or `relationship_not_active`.
 */
export async function assertProviderApprover(
  tx: TxHandle,
  caller: Caller,
  privilege: Privilege,
  relationship: Relationship | undefined,
  now: number,
): Promise<void> {
  const home = caller.principal.home;
  if (!home) return;
  if (!relationship || relationship.providerTenantId !== home.tenantId)
    throw new TetherError(
      'approver_not_eligible',
      `${caller.principal.name} is a provider's operator: it reviews only requests made under its provider's relationship`,
    );
  assertRelationshipUsable(relationship, now);
  const groups = new Set(await groupIdsOf(tx, home.tenantId, home.principalId));
  if (!namesApproverGroup(relationship, groups))
    throw new TetherError(
      'approver_not_eligible',
      `${caller.principal.name} is not a provider approver of relationship ${relationship.name} for ${privilege.name}`,
    );
}

/** Whether a seat's review stands on the relationship: Cedar found no policy either way. */
export function permittedByRelationship(
  caller: Pick<Caller, 'principal'>,
  decision: { errors: readonly unknown[]; policies: readonly string[] },
): boolean {
  return (
    caller.principal.home !== undefined && decision.errors.length === 0 && decision.policies.length === 0
  );
}
