import type { Principal } from '../domain/principal.js';
import type { Privilege } from '../domain/privilege.js';
import type { Relationship } from '../domain/relationship.js';
import type {
  PolicyAction,
  PolicyDecision,
  PrincipalFacts,
  RelationshipFacts,
  TicketFacts,
} from '../policy/cedar.js';
import type { StoreHandle } from '../store/database.js';
import { findGroup, groupIdsOf, groupNamesOf } from '../store/repositories/groups.js';
import { currentPolicyVersion } from '../store/repositories/policies.js';
import { findTenantById } from '../store/repositories/tenants.js';
import type { BrokerContext } from './context.js';
import { ticketFactsOf, ticketStanding } from './ticket-facts.js';

export async function principalFacts(h: StoreHandle, p: Principal): Promise<PrincipalFacts> {
  return {
    id: p.id,
    name: p.name,
    kind: p.kind,
    enabled: p.enabled,
    // Group names, not ids, so that policies read as `principal in Tether::Group::"approvers"`.
    groups: await groupNamesOf(h, p.tenantId, p.id),
    attributes: p.attributes,
  };
}

export interface PolicyQuestion {
  action: PolicyAction;
  actor: Principal;
  requester: Principal;
  privilege: Privilege;
  ticket: string | null;
  /** For an extension, the session's whole length once extended. */
  durationSeconds: number;
  /** Set when the request extends a live session: the seconds it adds. */
  extensionSeconds?: number | undefined;
  reason: string;
  timeZone: string;
  /**
   * Extra Cedar tags on the requester for this one decision, e.g. the `claim:<name>` tags of a
   * federated workload's token. They never replace the principal's own attributes.
   */
  principalTags?: Record<string, string> | undefined;
  /** The (verified) relationship a provider operator's seat asks under: `context.relationship`. */
  relationship?: Relationship | undefined;
}

/** The relationship as Cedar sees it: the provider's name and the operator's groups it names. */
export async function relationshipFacts(
  h: StoreHandle,
  r: Relationship,
  requester: Principal,
): Promise<RelationshipFacts> {
  const provider = await findTenantById(h, r.providerTenantId);
  const home = requester.home;
  const mine = home ? new Set(await groupIdsOf(h, home.tenantId, home.principalId)) : new Set<string>();
  const named = r.providerGroupIds.filter((id) => mine.has(id));
  const groups = await Promise.all(named.map((id) => findGroup(h, r.providerTenantId, id)));
  return {
    id: r.id,
    name: r.name,
    provider: provider?.name ?? r.providerTenantId,
    providerGroups: groups.flatMap((g) => (g ? [g.name] : [])),
  };
}

/** The ticket's facts for Cedar, from the requester's side; undefined when the register does not know it. */
async function ticketFacts(h: StoreHandle, q: PolicyQuestion): Promise<TicketFacts | undefined> {
  if (q.ticket === null) return undefined;
  return ticketFactsOf(await ticketStanding(h, q.requester.tenantId, q.ticket, q.requester));
}

/**
 * Asks the tenant's current Cedar policy set. A tenant with no policy set gets Cedar's
 * default: deny.
 */
export async function askPolicy(
  ctx: BrokerContext,
  h: StoreHandle,
  q: PolicyQuestion,
): Promise<PolicyDecision> {
  const current = await currentPolicyVersion(h, q.actor.tenantId);
  const actorFacts = await principalFacts(h, q.actor);
  const requesterFacts = q.requester.id === q.actor.id ? actorFacts : await principalFacts(h, q.requester);
  if (q.principalTags) requesterFacts.attributes = { ...q.principalTags, ...requesterFacts.attributes };
  const ticketInfo = await ticketFacts(h, q);
  const relationship = q.relationship && (await relationshipFacts(h, q.relationship, q.requester));
  const decision = ctx.policy.decide(
    `${q.actor.tenantId}:${current?.version ?? 0}`,
    current?.policies ?? {},
    {
      action: q.action,
      principal: actorFacts,
      requester: requesterFacts,
      privilege: { id: q.privilege.id, name: q.privilege.name, attributes: q.privilege.attributes },
      ...(q.ticket === null ? {} : { ticket: q.ticket }),
      ...(ticketInfo ? { ticketInfo } : {}),
      ...(relationship ? { relationship } : {}),
      durationSeconds: q.durationSeconds,
      ...(q.extensionSeconds === undefined ? {} : { extensionSeconds: q.extensionSeconds }),
      reason: q.reason,
      at: ctx.clock.now(),
      timeZone: q.timeZone,
    },
  );
  if (decision.errors.length > 0) {
    ctx.logger.warn(
      { action: q.action, errors: decision.errors },
      'policy evaluation errors (treated as deny)',
    );
  }
  return decision;
}

/** A refusal's explanation: which policies forbade it, or that none permitted it. */
export function explainRefusal(decision: PolicyDecision, what: string): string {
  if (decision.errors.length > 0) return `${what}: policy evaluation failed, so access is denied`;
  if (decision.policies.length > 0) return `${what}: forbidden by policy ${decision.policies.join(', ')}`;
  return `${what}: no policy permits it`;
}
