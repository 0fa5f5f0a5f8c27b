import { TetherError } from '@tether-broker/protocol';
import type {
  AuthzenDecision,
  AuthzenEvaluationRequest,
  AuthzenEvaluationsRequest,
  AuthzenEvaluationsResponse,
} from '@tether-broker/protocol/api';
import { requireRole } from '../core/access-control.js';
import type { BrokerContext, Caller } from '../core/context.js';
import type { Principal } from '../domain/principal.js';
import { isLive, type Session } from '../domain/session.js';
import { judgeSession } from '../evaluation/evaluate.js';
import { EvaluationFacts } from '../evaluation/facts.js';
import { listPepAudiences } from '../store/repositories/peps.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { findRequest } from '../store/repositories/requests.js';
import { findSessionByRequest, listSessions } from '../store/repositories/sessions.js';
import { requestableContext, requestablePrivilege } from './requestable.js';
import { grantCovers, resolveSubject } from './subjects.js';

/** The most live sessions of one principal an evaluation looks through. */
const SESSIONS_PER_SUBJECT = 50;

/** A deny, with why for the PEP's operator (`reason_admin`) and for its user (`reason_user`). */
function deny(why: string, code: string): AuthzenDecision {
  return {
    decision: false,
    context: {
      reason_admin: { '403': why },
      reason_user: { '403': 'No live Tether session grants this; request the privilege, then try again' },
      tether_code: code,
    },
  };
}

/** The subject's principal and live-session candidates; undefined for an unknown subject type. */
async function subjectOf(
  ctx: BrokerContext,
  caller: Caller,
  subject: AuthzenEvaluationRequest['subject'],
): Promise<{ principal: Principal | undefined; sessions: Session[] } | undefined> {
  const resolved = await resolveSubject(ctx, caller.tenant.id, subject);
  if (!resolved?.principal) return resolved && { principal: undefined, sessions: [] };
  if (resolved.session) return { principal: resolved.principal, sessions: [resolved.session] };
  const sessions = await listSessions(ctx.store, caller.tenant.id, {
    state: 'active',
    principalId: resolved.principal.id,
    limit: SESSIONS_PER_SUBJECT,
  });
  return { principal: resolved.principal, sessions };
}

/**
 * One AuthZEN access evaluation (§6) decided by Tether: permitted when the subject holds a live
 * session, honoured by this PEP (an audience in common), whose grant covers the action on the
 * resource, and which continuous evaluation keeps as it stands now (principal enabled,
 * privilege still granting it, Cedar's `request` and `continue` permitting it, trust signals
 * heard). The session of another tenant, an ended one and an unknown one are denied alike.
 * Only enforcement points (`pep` role) may ask.
 */
export async function evaluateAccess(
  ctx: BrokerContext,
  caller: Caller,
  request: AuthzenEvaluationRequest,
): Promise<AuthzenDecision> {
  requireRole(caller, 'pep');
  return decide(ctx, caller, await listPepAudiences(ctx.store, caller.principal.id), request);
}

async function decide(
  ctx: BrokerContext,
  caller: Caller,
  audiences: readonly string[],
  request: AuthzenEvaluationRequest,
): Promise<AuthzenDecision> {
  const subject = await subjectOf(ctx, caller, request.subject);
  if (subject === undefined)
    return deny(
      `subject type ${JSON.stringify(request.subject.type)} is not one Tether knows (session, principal)`,
      'unsupported_subject',
    );
  const now = ctx.clock.now();
  const action = request.action.name;
  const resource = request.resource.id;
  const candidates = subject.sessions.filter(
    (s: Session) =>
      isLive(s, now) &&
      s.grant.audiences.some((a) => audiences.includes(a)) &&
      grantCovers(s.grant, action, resource),
  );
  if (candidates.length === 0) return notCovered(ctx, caller, audiences, request, subject.principal);
  // Continuous evaluation as it would judge the session now: what it would cut is not granted.
  const facts = new EvaluationFacts(ctx.store);
  let refusedBy: string | undefined;
  for (const session of candidates) {
    const verdict = await judgeSession(ctx, facts, session, now);
    if (verdict.outcome === 'end') {
      refusedBy = verdict.why;
      continue;
    }
    const grant = verdict.outcome === 'narrow' ? verdict.grant : session.grant;
    if (grantCovers(grant, action, resource))
      return { decision: true, context: { session: session.id, privilege: session.grant.privilege } };
    refusedBy = 'policy no longer lets the session hold this action';
  }
  return deny(refusedBy ?? 'refused by policy', 'policy');
}

/**
 * No live session covers it. When the subject could ask for a privilege that would, the denial
 * is requestable (Access Request profile §7); when it cites an approval (`context.approval`,
 * §12) whose request is approved but not yet activated into a session, the answer is to retry
 * once it is (`grant_pending`): the PDP stays authoritative, and only a live session permits.
 */
async function notCovered(
  ctx: BrokerContext,
  caller: Caller,
  audiences: readonly string[],
  request: AuthzenEvaluationRequest,
  principal: Principal | undefined,
): Promise<AuthzenDecision> {
  const why = `no live session of the subject that this PEP honours covers ${request.action.name} on ${request.resource.id}`;
  const denied = deny(why, 'no_session');
  if (!principal?.enabled) return denied;
  if (await approvalPending(ctx, caller, principal, audiences, request))
    return {
      ...denied,
      context: { ...denied.context, reason: 'grant_pending', next_action: 'retry', retry_after: 1 },
    };
  const privilege = await requestablePrivilege(ctx, principal, audiences, request, caller.tenant.timeZone);
  if (!privilege) return denied;
  return {
    ...denied,
    context: {
      ...denied.context,
      ...(await requestableContext(ctx, caller.principal.id, caller.tenant.id, privilege, request)),
    },
  };
}

/**
 * Whether the evaluation cites (`context.approval.id`) the subject's approved request for a
 * privilege that covers this call at this PEP, still inside its activation window and not yet
 * activated: the grant is pending, not refused. Any other citation counts for nothing (the
 * denial is then requestable again, or plain).
 */
async function approvalPending(
  ctx: BrokerContext,
  caller: Caller,
  principal: Principal,
  audiences: readonly string[],
  request: AuthzenEvaluationRequest,
): Promise<boolean> {
  const id = (request.context?.approval as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string' || id.length > 64) return false;
  const cited = await findRequest(ctx.store, caller.tenant.id, id);
  if (!cited || cited.principalId !== principal.id || cited.kind !== 'access' || cited.state !== 'approved')
    return false;
  if (cited.activationExpiresAt === null || ctx.clock.now() >= cited.activationExpiresAt) return false;
  if (await findSessionByRequest(ctx.store, cited.id)) return false;
  const privilege = await findPrivilege(ctx.store, caller.tenant.id, cited.privilegeId);
  return (
    privilege?.audiences.some((a) => audiences.includes(a)) === true &&
    grantCovers(
      { privilege: privilege.name, actions: privilege.actions, resources: privilege.resources },
      request.action.name,
      request.resource.id,
    )
  );
}

/**
 * The Access Evaluations API (§7): each evaluation is the request's defaults overridden key by
 * key by its own members (§7.1.1), decided in order; `deny_on_first_deny` and
 * `permit_on_first_permit` stop at the first deny or permit and answer the decisions made so
 * far (§7.1.2.1). Without evaluations it is one evaluation, answered as one decision (§7.1).
 * An evaluation left without a subject, action or resource makes the whole request a 400.
 */
export async function evaluateAccessMany(
  ctx: BrokerContext,
  caller: Caller,
  request: AuthzenEvaluationsRequest,
): Promise<AuthzenEvaluationsResponse> {
  requireRole(caller, 'pep');
  const { evaluations, options, ...defaults } = request;
  const items = (evaluations ?? []).length === 0 ? [{}] : (evaluations ?? []);
  const complete = items.map((item, i) => {
    const merged = { ...defaults, ...item };
    const { subject, action, resource } = merged;
    if (!subject || !action || !resource)
      throw new TetherError(
        'invalid_request',
        `evaluation ${i} has no ${!subject ? 'subject' : !action ? 'action' : 'resource'}, nor does the request as a default (AuthZEN §7.1.1)`,
      );
    return { ...merged, subject, action, resource };
  });
  const audiences = await listPepAudiences(ctx.store, caller.principal.id);
  if (evaluations === undefined || evaluations.length === 0)
    return decide(ctx, caller, audiences, complete[0] as AuthzenEvaluationRequest);
  const semantic = options?.evaluations_semantic ?? 'execute_all';
  const decisions: AuthzenDecision[] = [];
  // The same question twice in one boxcar is decided once (each costs store reads and Cedar).
  const decided = new Map<string, AuthzenDecision>();
  for (const evaluation of complete) {
    const key = JSON.stringify(evaluation);
    const decision = decided.get(key) ?? (await decide(ctx, caller, audiences, evaluation));
    decided.set(key, decision);
    decisions.push(decision);
    if (semantic === 'deny_on_first_deny' && !decision.decision) break;
    if (semantic === 'permit_on_first_permit' && decision.decision) break;
  }
  return { evaluations: decisions };
}
