import { TetherError } from '@tether-broker/protocol';

/**
 * A provider's relationship with one of its customers (issue 14): which provider groups may
 * request which customer privileges, who approves, and until when. It grants nothing by
 * itself: a provider operator still asks, the customer's approvers still decide, and the
 * session lives in the customer's tenant. `proposed` (by the provider) → `active` (accepted by
 * the customer) → `ended` (by either side, or at `endsAt`).
 */
export type RelationshipState = 'proposed' | 'active' | 'ended';

/** How many approvals a request made under the relationship needs, on each side. */
export interface RelationshipApproval {
  customer: number;
}

export interface Relationship {
  id: string;
  providerTenantId: string;
  customerTenantId: string;
  name: string;
  state: RelationshipState;
  /** Group ids in the provider tenant whose members may request. */
  providerGroupIds: string[];
  /** Privilege ids in the customer tenant they may request. */
  privilegeIds: string[];
  approval: RelationshipApproval;
  startsAt: number | null;
  endsAt: number;
  proposedBy: string;
  proposedAt: number;
  acceptedBy: string | null;
  acceptedAt: number | null;
  endedBy: string | null;
  endedAt: number | null;
  endReason: RelationshipEndReason | null;
  updatedAt: number;
}

/** Why a relationship ended: a side ended it, or its window closed. */
export type RelationshipEndReason = 'ended_by_customer' | 'ended_by_provider' | 'expired';

/** The longest a relationship may last: a year (the market's standing grants last two). */
export const MAX_RELATIONSHIP_MS = 365 * 24 * 3600_000;
/** At most this many groups and privileges in one relationship. */
export const MAX_RELATIONSHIP_ITEMS = 32;
/** The most approvals a relationship may ask of the customer's side. */
export const MAX_RELATIONSHIP_APPROVALS = 5;

/** Whether a request or session may be made under the relationship at `now`. */
export function relationshipUsableAt(r: Relationship, now: number): boolean {
  return r.state === 'active' && (r.startsAt === null || now >= r.startsAt) && now < r.endsAt;
}

/** Why a relationship cannot be used at `now` (`relationship_not_active`), or nothing. */
export function assertRelationshipUsable(r: Relationship, now: number): void {
  if (relationshipUsableAt(r, now)) return;
  const why =
    r.state === 'proposed'
      ? 'has not been accepted by the customer'
      : r.state === 'ended'
        ? 'has ended'
        : r.startsAt !== null && now < r.startsAt
          ? 'has not started'
          : 'is past its end';
  throw new TetherError('relationship_not_active', `relationship ${r.name} ${why}`);
}

/** Checks a proposal's window and sizes: an end ahead of its start and of now, within a year. */
export function assertProposable(
  p: Pick<Relationship, 'providerGroupIds' | 'privilegeIds' | 'approval' | 'startsAt' | 'endsAt'>,
  now: number,
): void {
  const from = p.startsAt ?? now;
  if (p.endsAt <= now || p.endsAt <= from)
    throw new TetherError(
      'invalid_relationship',
      'a relationship must end after it starts, and in the future',
    );
  if (p.endsAt - from > MAX_RELATIONSHIP_MS)
    throw new TetherError('invalid_relationship', 'a relationship may last at most 365 days');
  if (p.providerGroupIds.length === 0 || p.privilegeIds.length === 0)
    throw new TetherError(
      'invalid_relationship',
      'a relationship names at least one group and one privilege',
    );
  if (p.approval.customer < 1 || p.approval.customer > MAX_RELATIONSHIP_APPROVALS)
    throw new TetherError(
      'invalid_relationship',
      `the customer's side approves every request made under a relationship: 1 to ${MAX_RELATIONSHIP_APPROVALS} approvals`,
    );
}

/** What a narrowing may change: fewer groups or privileges, an earlier end, more approvals. */
export interface RelationshipNarrowing {
  providerGroupIds?: string[] | undefined;
  privilegeIds?: string[] | undefined;
  endsAt?: number | undefined;
  approval?: RelationshipApproval | undefined;
}

/**
 * The relationship narrowed, or `invalid_relationship` when a change would widen it: a group or
 * privilege it does not name, a later end, fewer approvals. Either side may narrow; only a new,
 * accepted proposal widens.
 */
export function narrowRelationship(r: Relationship, n: RelationshipNarrowing, now: number): Relationship {
  const subset = (next: string[] | undefined, current: string[], what: string) => {
    if (next === undefined) return current;
    const widened = next.filter((id) => !current.includes(id));
    if (widened.length > 0) throw new TetherError('invalid_relationship', `narrowing cannot add ${what}`);
    if (next.length === 0)
      throw new TetherError(
        'invalid_relationship',
        `a relationship keeps at least one ${what}; end it instead`,
      );
    return [...new Set(next)];
  };
  const providerGroupIds = subset(n.providerGroupIds, r.providerGroupIds, 'group');
  const privilegeIds = subset(n.privilegeIds, r.privilegeIds, 'privilege');
  if (n.endsAt !== undefined && (n.endsAt > r.endsAt || n.endsAt <= now))
    throw new TetherError(
      'invalid_relationship',
      'narrowing can only bring the end earlier, and not into the past',
    );
  if (n.approval !== undefined && n.approval.customer < r.approval.customer)
    throw new TetherError('invalid_relationship', 'narrowing cannot ask for fewer approvals');
  if (n.approval !== undefined && n.approval.customer > MAX_RELATIONSHIP_APPROVALS)
    throw new TetherError('invalid_relationship', `at most ${MAX_RELATIONSHIP_APPROVALS} approvals`);
  return {
    ...r,
    providerGroupIds,
    privilegeIds,
    endsAt: n.endsAt ?? r.endsAt,
    approval: n.approval ?? r.approval,
    updatedAt: now,
  };
}

/**
 * The fields whose integrity the relationship's seal protects, canonically ordered: what it
 * lets whom do, and when. A row whose seal does not open to exactly these is not trusted.
 */
export function sealedContent(r: Relationship): string {
  return JSON.stringify({
    v: 1,
    provider: r.providerTenantId,
    customer: r.customerTenantId,
    state: r.state,
    groups: [...r.providerGroupIds].sort(),
    privileges: [...r.privilegeIds].sort(),
    approval: { customer: r.approval.customer },
    starts_at: r.startsAt,
    ends_at: r.endsAt,
  });
}

/** The side a tenant is on in the relationship, or null when it is not a party. */
export function sideOf(r: Relationship, tenantId: string): 'provider' | 'customer' | null {
  if (r.providerTenantId === tenantId) return 'provider';
  if (r.customerTenantId === tenantId) return 'customer';
  return null;
}
