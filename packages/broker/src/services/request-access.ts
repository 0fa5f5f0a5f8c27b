import { TetherError } from '@tether/protocol';
import { recordAudit } from '../audit/record.js';
import { newId } from '../domain/ids.js';
import { type AccessRequest, approvedAt, assertRequestFitsPrivilege } from '../domain/request.js';
import { inTransaction } from '../store/database.js';
import { insertRequest } from '../store/repositories/requests.js';
import { recordRefusal } from './audit-refusal.js';
import type { BrokerContext, Caller } from './context.js';
import { askPolicy, explainRefusal } from './policy-facts.js';
import { resolvePrivilege } from './resolve.js';

export interface AccessAsk {
  privilege: string;
  ticket?: string | undefined;
  justification: string;
  durationSeconds?: number | undefined;
}

/** Default duration when the requester does not say: an hour, or the privilege's maximum if shorter. */
const DEFAULT_DURATION_S = 3600;

/**
 * The caller asks for a privilege. Checks, in order: the privilege exists in the tenant, the
 * ask fits its ticket and duration rules, Cedar `request` permits it; then Cedar
 * `auto_approve` may approve it at once. Otherwise it waits for reviews.
 */
export async function requestAccess(
  ctx: BrokerContext,
  caller: Caller,
  ask: AccessAsk,
): Promise<AccessRequest> {
  const tenantId = caller.tenant.id;
  const privilege = await resolvePrivilege(ctx.store, tenantId, ask.privilege);
  const ticket = ask.ticket?.trim() ? ask.ticket.trim() : null;
  const durationSeconds = ask.durationSeconds ?? Math.min(DEFAULT_DURATION_S, privilege.maxDurationSeconds);
  assertRequestFitsPrivilege(privilege, { ticket, durationSeconds });

  const question = {
    actor: caller.principal,
    requester: caller.principal,
    privilege,
    ticket,
    durationSeconds,
    reason: ask.justification,
    timeZone: caller.tenant.timeZone,
  };
  const eligibility = await askPolicy(ctx, ctx.store, { ...question, action: 'request' });
  if (!eligibility.allowed) {
    const detail = explainRefusal(eligibility, `${caller.principal.name} may not request ${privilege.name}`);
    await recordRefusal(ctx, tenantId, {
      actor: caller.principal.id,
      action: 'request.create',
      target: privilege.id,
      ticket,
      principalId: caller.principal.id,
      policies: eligibility.policies,
      details: { reason: detail },
    });
    throw new TetherError('not_eligible', detail, { extra: { policies: eligibility.policies } });
  }
  const auto = await askPolicy(ctx, ctx.store, { ...question, action: 'auto_approve' });

  const now = ctx.clock.now();
  const pending: AccessRequest = {
    id: newId('request'),
    tenantId,
    principalId: caller.principal.id,
    privilegeId: privilege.id,
    ticket,
    justification: ask.justification,
    durationSeconds,
    state: 'pending',
    approvalsRequired: privilege.approval.approvals,
    createdAt: now,
    expiresAt: now + ctx.config.requestTtlSeconds * 1000,
    resolvedAt: null,
    resolvedBy: null,
    activationExpiresAt: null,
    policies: eligibility.policies,
  };
  const request = auto.allowed
    ? { ...approvedAt(pending, now, ctx.config, null), policies: [...eligibility.policies, ...auto.policies] }
    : pending;

  await inTransaction(ctx.store, async (tx) => {
    await insertRequest(tx, request);
    const common = { requestId: request.id, ticket, principalId: request.principalId, target: request.id };
    await recordAudit(tx, tenantId, now, {
      ...common,
      actor: caller.principal.id,
      action: 'request.created',
      outcome: 'success',
      policies: eligibility.policies,
      details: { privilege: privilege.name, duration_s: durationSeconds, justification: ask.justification },
    });
    if (auto.allowed) {
      await recordAudit(tx, tenantId, now, {
        ...common,
        actor: 'policy',
        action: 'request.approved',
        outcome: 'success',
        policies: auto.policies,
        details: { auto_approved: true, activation_expires_at: request.activationExpiresAt },
      });
    }
  });
  return request;
}
