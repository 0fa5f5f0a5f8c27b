import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { assertContractActive } from '../domain/contract.js';
import { newId } from '../domain/ids.js';
import type { Privilege } from '../domain/privilege.js';
import type { Relationship } from '../domain/relationship.js';
import { type AccessRequest, approvedAt, assertRequestFitsPrivilege } from '../domain/request.js';
import type { TxHandle } from '../store/database.js';
import { insertRequest } from '../store/repositories/requests.js';
import { recordRefusal } from './audit-refusal.js';
import type { BrokerContext, Caller } from './context.js';
import { queueRecordedRequest } from './notification-outbox.js';
import { askPolicy, explainRefusal } from './policy-facts.js';
import { resolvePrivilege } from './resolve.js';
import { relationshipsCovering } from './seats.js';
import { assertTicketAllowsRequest } from './ticket-facts.js';

export interface AccessAsk {
  privilege: string;
  ticket?: string | undefined;
  justification: string;
  durationSeconds?: number | undefined;
}

/** Default duration when the requester does not say: an hour, or the privilege's maximum if shorter. */
export const DEFAULT_DURATION_S = 3600;

/** How a request came to be asked, beyond the ask itself. */
export interface AskContext {
  /** Extra Cedar tags on the requester for these decisions (a workload token's claims). */
  principalTags?: Record<string, string> | undefined;
  /** Extra, non-secret facts for the `request.created` audit record (e.g. the trust record used). */
  auditDetails?: Record<string, unknown> | undefined;
}

/** A request that passed its checks and policy, not yet written. */
export interface DecidedRequest {
  request: AccessRequest;
  privilege: Privilege;
  /** Whether Cedar `auto_approve` approved it at once. */
  autoApproved: boolean;
  eligibilityPolicies: string[];
  autoPolicies: string[];
  auditDetails: Record<string, unknown>;
}

/**
 * The checks and policy decisions of `requestAccess` (requests/request-access.ts), writing nothing but the audit
 * record of a refusal. Throws `contract_not_active`, `not_found`, `duration_exceeds_max`, `ticket_required`,
 * `ticket_pattern_mismatch`, `ticket_closed`, `ticket_not_found`, `ticket_not_assigned` or
 * `not_eligible`.
 */
export async function decideRequest(
  ctx: BrokerContext,
  caller: Caller,
  ask: AccessAsk,
  asked: AskContext = {},
): Promise<DecidedRequest> {
  const tenantId = caller.tenant.id;
  await assertInContract(ctx, caller, ask.privilege);
  const privilege = await resolvePrivilege(ctx.store, tenantId, ask.privilege);
  const ticket = ask.ticket?.trim() ? ask.ticket.trim() : null;
  const durationSeconds = ask.durationSeconds ?? Math.min(DEFAULT_DURATION_S, privilege.maxDurationSeconds);
  assertRequestFitsPrivilege(privilege, { ticket, durationSeconds });
  await assertTicketAllowsRequest(ctx, caller.principal, privilege, ticket, asked.auditDetails);
  const relationship = await relationshipToAskUnder(ctx, caller, privilege);

  const question = {
    actor: caller.principal,
    requester: caller.principal,
    privilege,
    ticket,
    durationSeconds,
    reason: ask.justification,
    timeZone: caller.tenant.timeZone,
    principalTags: asked.principalTags,
    relationship,
  };
  const eligibility = await askPolicy(ctx, ctx.store, { ...question, action: 'request' });
  // The customer's acceptance of the relationship is its permit for a provider operator to ask;
  // the customer's Cedar forbids (and any evaluation error) still refuse.
  const permittedByRelationship =
    relationship !== undefined && eligibility.errors.length === 0 && eligibility.policies.length === 0;
  if (!eligibility.allowed && !permittedByRelationship) {
    const detail = explainRefusal(eligibility, `${caller.principal.name} may not request ${privilege.name}`);
    await recordRefusal(ctx, tenantId, {
      actor: caller.principal.id,
      action: 'request.create',
      target: privilege.id,
      ticket,
      principalId: caller.principal.id,
      policies: eligibility.policies,
      details: { reason: detail, ...asked.auditDetails },
    });
    throw new TetherError('not_eligible', detail, { extra: { policies: eligibility.policies } });
  }
  // Under a relationship the customer's approvers decide, always: nothing is auto-approved.
  const auto = relationship
    ? { allowed: false, policies: [] as string[] }
    : await askPolicy(ctx, ctx.store, { ...question, action: 'auto_approve' });

  const now = ctx.clock.now();
  const pending: AccessRequest = {
    id: newId('request'),
    tenantId,
    kind: 'access',
    sessionId: null,
    principalId: caller.principal.id,
    privilegeId: privilege.id,
    ticket,
    justification: ask.justification,
    durationSeconds,
    state: 'pending',
    approvalsRequired: Math.max(privilege.approval.approvals, relationship?.approval.customer ?? 0),
    createdAt: now,
    expiresAt: now + ctx.config.requestTtlSeconds * 1000,
    resolvedAt: null,
    resolvedBy: null,
    activationExpiresAt: null,
    policies: eligibility.policies,
    ...(relationship ? { relationshipId: relationship.id } : {}),
  };
  const request = auto.allowed
    ? { ...approvedAt(pending, now, ctx.config, null), policies: [...eligibility.policies, ...auto.policies] }
    : pending;
  return {
    request,
    privilege,
    autoApproved: auto.allowed,
    eligibilityPolicies: eligibility.policies,
    autoPolicies: auto.policies,
    auditDetails: asked.auditDetails ?? {},
  };
}

/**
 * For a provider operator's seat: the relationship it asks under, among those covering it for
 * the privilege now, the strictest (most approvals, then the earliest end). Anyone else asks
 * under none. No relationship covering the ask is `not_covered_by_relationship`, recorded.
 */
async function relationshipToAskUnder(
  ctx: BrokerContext,
  caller: Caller,
  privilege: Privilege,
): Promise<Relationship | undefined> {
  if (!caller.principal.home) return undefined;
  const covering = await relationshipsCovering(ctx, caller.principal, ctx.clock.now(), privilege.id);
  const [strictest] = covering.sort(
    (a, b) => b.approval.customer - a.approval.customer || a.endsAt - b.endsAt,
  );
  if (strictest) return strictest;
  const detail = `no active relationship lets ${caller.principal.name} request ${privilege.name}`;
  await recordRefusal(ctx, caller.tenant.id, {
    actor: caller.principal.id,
    action: 'request.create',
    target: privilege.id,
    principalId: caller.principal.id,
    details: { code: 'not_covered_by_relationship', reason: detail },
  });
  throw new TetherError('not_covered_by_relationship', detail);
}

/** Outside its contract window a principal may ask for nothing; the refusal is recorded. */
async function assertInContract(ctx: BrokerContext, caller: Caller, privilege: string): Promise<void> {
  try {
    assertContractActive(caller.principal, ctx.clock.now());
  } catch (err) {
    if (!(err instanceof TetherError)) throw err;
    await recordRefusal(ctx, caller.tenant.id, {
      actor: caller.principal.id,
      action: 'request.create',
      target: privilege,
      principalId: caller.principal.id,
      details: { code: err.code, reason: err.detail },
    });
    throw err;
  }
}

/** Writes a decided request and its audit records (created; approved, when policy approved it) in `tx`. */
export async function recordRequest(tx: TxHandle, decided: DecidedRequest): Promise<void> {
  const { request, privilege } = decided;
  const now = request.createdAt;
  await insertRequest(tx, request);
  const common = {
    requestId: request.id,
    ticket: request.ticket,
    principalId: request.principalId,
    target: request.id,
  };
  await recordAudit(tx, request.tenantId, now, {
    ...common,
    actor: request.principalId,
    action: 'request.created',
    outcome: 'success',
    policies: decided.eligibilityPolicies,
    details: {
      privilege: privilege.name,
      duration_s: request.durationSeconds,
      justification: request.justification,
      ...decided.auditDetails,
    },
  });
  if (decided.autoApproved) {
    await recordAudit(tx, request.tenantId, now, {
      ...common,
      actor: 'policy',
      action: 'request.approved',
      outcome: 'success',
      policies: decided.autoPolicies,
      details: { auto_approved: true, activation_expires_at: request.activationExpiresAt },
    });
  }
  await queueRecordedRequest(tx, request);
}
