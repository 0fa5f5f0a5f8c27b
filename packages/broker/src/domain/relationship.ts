import { TetherError } from '@tether-broker/protocol';

/**
 * A provider's relationship with one of its customers (issue 14): which provider groups may
 * request which customer privileges, who approves, and until when. It grants nothing by
 * itself: a provider operator still asks, the customer's approvers still decide, and the
 * session lives in the customer's tenant. `proposed` (by the provider) → `active` (accepted by
 * the customer) → `ended` (by either side, or at `endsAt`).
 */
export type RelationshipState = 'proposed' | 'active' | 'ended';

/**
 * How many approvals a request made under the relationship needs, on each side (N of M per
 * side). The customer's side is its own approvers, as its privilege names them; the provider's
 * side is the members of `providerApproverGroupIds` (groups of the provider tenant), each
 * approving through their seat in the customer tenant. A stored relationship from before
 * provider approvals has neither `provider` nor groups: zero on the provider's side.
 */
export interface RelationshipApproval {
  customer: number;
  provider?: number | undefined;
  providerApproverGroupIds?: string[] | undefined;
}

/** The provider side's count and groups, with the defaults of a relationship that has none. */
export function providerApproval(a: RelationshipApproval): { count: number; groupIds: string[] } {
  return { count: a.provider ?? 0, groupIds: a.providerApproverGroupIds ?? [] };
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
  assertApproval(p.approval);
}

/**
 * Each side asks 0 to 5 approvals and at least one side asks one: nothing made under a
 * relationship is approved by nobody. A provider count needs the groups its approvers come
 * from, and groups without a count would be a list of people who approve nothing.
 */
function assertApproval(a: RelationshipApproval): void {
  const provider = providerApproval(a);
  const inRange = (n: number) => Number.isInteger(n) && n >= 0 && n <= MAX_RELATIONSHIP_APPROVALS;
  if (!inRange(a.customer) || !inRange(provider.count))
    throw new TetherError(
      'invalid_relationship',
      `each side asks 0 to ${MAX_RELATIONSHIP_APPROVALS} approvals per request`,
    );
  if (a.customer + provider.count === 0)
    throw new TetherError(
      'invalid_relationship',
      'every request made under a relationship is approved by someone: ask at least one approval of a side',
    );
  if (provider.count > 0 && provider.groupIds.length === 0)
    throw new TetherError(
      'invalid_relationship',
      "provider approvals need the provider's approver groups (provider_approvers)",
    );
  if (provider.count === 0 && provider.groupIds.length > 0)
    throw new TetherError(
      'invalid_relationship',
      'provider approvers are named only with a number of provider approvals',
    );
  if (provider.groupIds.length > MAX_RELATIONSHIP_ITEMS)
    throw new TetherError('invalid_relationship', `at most ${MAX_RELATIONSHIP_ITEMS} approver groups`);
}

/** Whether the relationship names one of `groupIds` as groups whose members may request. */
export function namesOperatorGroup(r: Relationship, groupIds: ReadonlySet<string>): boolean {
  return r.providerGroupIds.some((g) => groupIds.has(g));
}

/** Whether the relationship names one of `groupIds` as provider approvers (with a count above 0). */
export function namesApproverGroup(r: Relationship, groupIds: ReadonlySet<string>): boolean {
  const provider = providerApproval(r.approval);
  return provider.count > 0 && provider.groupIds.some((g) => groupIds.has(g));
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
  const approval = n.approval === undefined ? r.approval : narrowApproval(r.approval, n.approval);
  return {
    ...r,
    providerGroupIds,
    privilegeIds,
    endsAt: n.endsAt ?? r.endsAt,
    approval,
    updatedAt: now,
  };
}

/**
 * Approvals narrowed: no side asks fewer, and the provider's approvers are only ever fewer
 * groups (a side that asked none may start asking, naming its approvers).
 */
function narrowApproval(current: RelationshipApproval, next: RelationshipApproval): RelationshipApproval {
  const was = providerApproval(current);
  const count = next.provider ?? was.count;
  const groupIds = next.providerApproverGroupIds ?? was.groupIds;
  if (next.customer < current.customer || count < was.count)
    throw new TetherError('invalid_relationship', 'narrowing cannot ask for fewer approvals');
  if (was.count > 0 && groupIds.some((g) => !was.groupIds.includes(g)))
    throw new TetherError('invalid_relationship', 'narrowing cannot add provider approvers');
  const approval: RelationshipApproval =
    count === 0 && groupIds.length === 0
      ? { customer: next.customer }
      : { customer: next.customer, provider: count, providerApproverGroupIds: [...new Set(groupIds)] };
  assertApproval(approval);
  return approval;
}

/**
 * The fields whose integrity the relationship's seal protects, canonically ordered: what it
 * lets whom do, and when. A row whose seal does not open to exactly these is not trusted.
 */
export function sealedContent(r: Relationship): string {
  const provider = providerApproval(r.approval);
  return JSON.stringify({
    v: 1,
    provider: r.providerTenantId,
    customer: r.customerTenantId,
    state: r.state,
    groups: [...r.providerGroupIds].sort(),
    privileges: [...r.privilegeIds].sort(),
    // A relationship without provider approvals seals as it did before they existed, so rows
    // sealed then still open; with them, the count and the approvers are sealed too.
    approval:
      provider.count === 0 && provider.groupIds.length === 0
        ? { customer: r.approval.customer }
        : {
            customer: r.approval.customer,
            provider: provider.count,
            provider_approvers: [...provider.groupIds].sort(),
          },
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
