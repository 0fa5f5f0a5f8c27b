import type { Logger } from 'pino';
import type { Kek } from '../config/key-encryption.js';
import { contractActiveAt } from '../domain/contract.js';
import type { ForbiddenBy, Verdict } from '../domain/reevaluation.js';
import { reasonOf } from '../domain/reevaluation.js';
import {
  grantWithin,
  isEmptyGrant,
  isLive,
  isNarrower,
  type Session,
  type SessionGrant,
} from '../domain/session.js';
import {
  type DecisionInput,
  type PolicyDecision,
  type PolicyEngine,
  type TrustFacts,
  UNKNOWN_TRUST,
} from '../policy/cedar.js';
import type { EvaluationFacts, PolicySetFacts } from './facts.js';

/**
 * What judging a session needs besides the records: the engine, a log for its errors, and the
 * key that opens relationship seals (a seat's session stands on its relationship).
 */
export interface JudgeContext {
  policy: PolicyEngine;
  logger: Logger;
  kek: Kek;
}

const end = (reason: Extract<Verdict, { outcome: 'end' }>['reason'], why: string, policies: string[] = []) =>
  ({ outcome: 'end', reason, why, policies }) as const;

/**
 * Continuous evaluation of one live session against everything it stands on now: its principal
 * (enabled), its privilege (still granting what the session holds: what it no longer grants is
 * cut), the `request` policy (the principal may still ask for this privilege), and `continue`
 * for each action the session holds, with the trust context signals built. The session keeps
 * the actions `continue` permits.
 *
 * An end or a narrowing is blamed on trust (`trust_changed`) when the forbidden actions would
 * have been permitted had no signal been reported, else on policy (`policy_changed`).
 *
 * @example
 * ```ts
 * const verdict = await judgeSession(ctx, new EvaluationFacts(tx), session, ctx.clock.now());
 * if (verdict.outcome === 'end') await endSessionIn(ctx, tx, session, now, verdict.reason, null);
 * ```
 */
export async function judgeSession(
  ctx: JudgeContext,
  facts: EvaluationFacts,
  session: Session,
  at: number,
): Promise<Verdict> {
  const principal = await facts.principal(session.tenantId, session.principalId);
  if (!principal?.enabled) return end('principal_disabled', 'the principal is disabled');
  if (!contractActiveAt(principal.contract, at))
    return end('contract_ended', "the principal's contract window does not cover this time");
  const privilege = await facts.privilege(session.tenantId, session.privilegeId);
  if (!privilege) return end('privilege_deleted', 'the privilege was deleted');
  let within = grantWithin(session.grant, privilege);
  if (isEmptyGrant(within))
    return end('privilege_changed', 'the privilege no longer grants any of what the session holds');
  if (session.delegation !== null) {
    // A sub-session holds no more than its parent holds now, and nothing once it has ended.
    const parent = await facts.session(session.delegation.parentSessionId);
    if (!parent || !isLive(parent, at)) return end('parent_ended', 'the parent session has ended');
    within = grantWithin(within, parent.grant);
    if (isEmptyGrant(within))
      return end('parent_ended', 'the parent session no longer holds any of what the sub-session holds');
  }

  const standing = await facts.relationshipStanding(ctx.kek, session, principal, at);
  if (standing.outcome === 'lost') return end(standing.reason, standing.why);

  const policySet = await facts.policySet(session.tenantId);
  const input = {
    ...(await facts.decisionInput(session, principal, privilege, at)),
    ...(standing.outcome === 'stands' ? { relationship: standing.facts } : {}),
  };
  const requested = decideWith(ctx, policySet, input, false);
  // A provider operator's seat asks under a relationship the customer accepted: that acceptance
  // is its permit to request, as at the request itself; the customer's forbids still end it.
  const permittedBySeat =
    principal.home !== undefined && requested.errors.length === 0 && requested.policies.length === 0;
  if (!requested.allowed && !permittedBySeat)
    return end(
      'policy_changed',
      'policy no longer permits the principal to request this privilege',
      requested.policies,
    );

  return continueVerdict(ctx, policySet, input, await facts.trust(session), session, within);
}

/**
 * `continue` for each action the session may still hold: it keeps the permitted ones, and
 * ends without any. When some policy reads `context.entitlement_resource`, `continue` is then
 * asked for each resource with each kept action, and a resource is kept only when every one of
 * them is permitted with it: the grant is every kept action on every kept resource, so each
 * pair it holds was permitted. The privilege alone may already have cut the grant (`within`).
 */
function continueVerdict(
  ctx: JudgeContext,
  policySet: PolicySetFacts,
  input: DecisionInput,
  trust: TrustFacts,
  session: Session,
  within: SessionGrant,
): Verdict {
  const ask = (entitlement: Entitlement, withTrust: TrustFacts) =>
    decideWith(ctx, policySet, { ...input, action: 'continue', trust: withTrust, ...entitlement }, true);
  const forbidding = new Set<string>();
  const permitted = (entitlements: Entitlement[]) =>
    entitlements.every((entitlement) => {
      const d = ask(entitlement, trust);
      if (!d.allowed) for (const p of d.policies) forbidding.add(p);
      return d.allowed;
    });
  const kept: string[] = [];
  const forbidden: Entitlement[][] = [];
  for (const action of within.actions) {
    const asked = [{ entitlementAction: action }];
    if (permitted(asked)) kept.push(action);
    else forbidden.push(asked);
  }
  // Only a set that may read the resource can tell resources apart; with no action left, none is held anyway.
  const asksResources = policySet.asksResources && kept.length > 0;
  const resources = asksResources ? [] : within.resources;
  for (const resource of asksResources ? within.resources : []) {
    const asked = kept.map((action) => ({ entitlementAction: action, entitlementResource: resource }));
    if (permitted(asked)) resources.push(resource);
    else forbidden.push(asked);
  }
  // With nothing reported by any signal, trust cannot be what forbade: no need to ask.
  const signalled = JSON.stringify(trust) !== JSON.stringify(UNKNOWN_TRUST);
  const cause: ForbiddenBy =
    signalled && forbidden.some((asked) => asked.every((e) => ask(e, UNKNOWN_TRUST).allowed))
      ? 'trust'
      : 'policy';
  const policies = [...forbidding];
  if (kept.length === 0 || resources.length === 0)
    return end(
      reasonOf(cause),
      `${reasonText(cause)} forbids every ${kept.length === 0 ? 'action' : 'resource'} the session holds`,
      policies,
    );
  const grant = { ...within, actions: kept, resources };
  if (!isNarrower(grant, session.grant)) return { outcome: 'keep' };
  if (forbidden.length === 0)
    return {
      outcome: 'narrow',
      grant,
      reason: 'privilege_changed',
      why: 'the privilege grants less',
      policies,
    };
  const cut = [
    ...within.actions.filter((a) => !kept.includes(a)),
    ...within.resources.filter((r) => !resources.includes(r)),
  ];
  return {
    outcome: 'narrow',
    grant,
    reason: reasonOf(cause),
    why: `${reasonText(cause)} forbids ${cut.join(', ')}`,
    policies,
  };
}

/** What one `continue` decision asks about: an action of the grant, and perhaps one of its resources. */
type Entitlement = Pick<DecisionInput, 'entitlementAction' | 'entitlementResource'>;

function reasonText(cause: ForbiddenBy): string {
  return cause === 'trust' ? 'policy, given what signals reported,' : 'policy';
}

/**
 * One decision against the tenant's current set; for `continue` with Tether's baseline permit
 * added (under its own cache key), so only a tenant `forbid` takes an action away.
 */
function decideWith(
  ctx: JudgeContext,
  policySet: PolicySetFacts,
  input: DecisionInput,
  withBaseline: boolean,
): PolicyDecision {
  const decision = withBaseline
    ? ctx.policy.decide(`${policySet.cacheKey}+continue`, policySet.continuePolicies, input)
    : ctx.policy.decide(policySet.cacheKey, policySet.policies, input);
  if (decision.errors.length > 0)
    ctx.logger.warn(
      { action: input.action, errors: decision.errors },
      'policy evaluation errors (treated as deny)',
    );
  return decision;
}
