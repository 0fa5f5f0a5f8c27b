import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { assertSessionVisible } from '../core/access-control.js';
import { applyExtension } from '../core/apply-extension.js';
import { recordRefusal } from '../core/audit-refusal.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { writeExpiry } from '../core/expire-requests.js';
import { askPolicy, explainRefusal } from '../core/policy-facts.js';
import { assertExtensionWithinContract } from '../domain/contract.js';
import { assertMayExtend, type ExtensionBounds, extensionBounds } from '../domain/extension.js';
import { newId } from '../domain/ids.js';
import type { Privilege } from '../domain/privilege.js';
import { type AccessRequest, approvedAt, expire } from '../domain/request.js';
import type { Session } from '../domain/session.js';
import { inTransaction, isUniqueViolation, type TxHandle } from '../store/database.js';
import { findFederatedRequest, findFederation } from '../store/repositories/federations.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { findPendingExtension, insertRequest, lockRequest } from '../store/repositories/requests.js';
import { lockSession } from '../store/repositories/sessions.js';

export interface ExtensionAsk {
  /** Seconds to add to the session's hard expiry. */
  bySeconds: number;
  justification: string;
}

/** What the transaction concluded; a policy refusal is recorded and thrown after it. */
type Outcome =
  | { request: AccessRequest }
  | { notEligible: TetherError; session: Session; privilege: Privilege; policies: string[] };

/**
 * The holder of a live session asks for more time. The ask is an access request of kind
 * `extension`, under the privilege's own rules: the session's whole length once extended may
 * not exceed `max_duration`, Cedar `request` must permit it (`context.is_extension`), Cedar
 * `auto_approve` may approve it at once; otherwise it waits for the privilege's approvers like
 * any request, and is applied to the session when approved (see review-request.ts). One
 * pending extension per session. Throws `not_found`, `forbidden`, `session_not_live`,
 * `duration_exceeds_max`, `extension_pending` or `not_eligible`.
 */
export async function requestExtension(
  ctx: BrokerContext,
  caller: Caller,
  sessionId: string,
  ask: ExtensionAsk,
): Promise<AccessRequest> {
  const outcome = await inTransaction(ctx.store, async (tx): Promise<Outcome> => {
    const session = await lockSession(tx, sessionId);
    assertSessionVisible(session, caller, sessionId);
    const now = ctx.clock.now();
    assertMayExtend(session, caller.principal.id, now);
    assertExtensionWithinContract(caller.principal, session, now);
    await assertNotBoundToSubjectToken(tx, session);
    const privilege = await findPrivilege(tx, session.tenantId, session.privilegeId);
    if (!privilege) throw new TetherError('not_found', 'the privilege of this session no longer exists');
    const bounds = extensionBounds(session, privilege, ask.bySeconds);
    await assertNoPendingExtension(tx, session, now);
    const decision = await decide(ctx, tx, caller, session, privilege, ask, bounds);
    if ('notEligible' in decision) return { ...decision, session, privilege };
    const request = await recordExtensionRequest(ctx, tx, {
      session,
      privilege,
      ask,
      bounds,
      now,
      ...decision,
    });
    return { request };
  });
  if ('request' in outcome) return outcome.request;
  await recordRefusal(ctx, caller.tenant.id, {
    actor: caller.principal.id,
    action: 'session.extend',
    target: outcome.session.id,
    ticket: outcome.session.ticket,
    principalId: caller.principal.id,
    policies: outcome.policies,
    details: { reason: outcome.notEligible.detail, extension_s: ask.bySeconds },
  });
  throw outcome.notEligible;
}

/** A session has one pending extension at most; one whose deadline passed is expired first. */
async function assertNoPendingExtension(tx: TxHandle, session: Session, now: number): Promise<void> {
  const pending = await findPendingExtension(tx, session.tenantId, session.id);
  if (!pending) return;
  const locked = await lockRequest(tx, session.tenantId, pending.id);
  const expired = locked && expire(locked, now);
  if (expired) {
    await writeExpiry(tx, expired, now);
    return;
  }
  if (locked?.state !== 'pending') return;
  throw new TetherError(
    'extension_pending',
    `session ${session.id} already has a pending extension request, ${pending.id}`,
    { extra: { request: pending.id } },
  );
}

type Decision =
  | { autoApproved: boolean; policies: string[]; autoPolicies: string[] }
  | { notEligible: TetherError; policies: string[] };

/** Cedar `request`, then `auto_approve`, for the extension (is_extension, its length and addition). */
async function decide(
  ctx: BrokerContext,
  tx: TxHandle,
  caller: Caller,
  session: Session,
  privilege: Privilege,
  ask: ExtensionAsk,
  bounds: ExtensionBounds,
): Promise<Decision> {
  const question = {
    actor: caller.principal,
    requester: caller.principal,
    privilege,
    ticket: session.ticket,
    durationSeconds: bounds.totalSeconds,
    extensionSeconds: ask.bySeconds,
    reason: ask.justification,
    timeZone: caller.tenant.timeZone,
    // A workload's session is asked about with the token claims its request was decided on.
    principalTags: (await findFederatedRequest(tx, session.requestId))?.principalTags,
  };
  const eligibility = await askPolicy(ctx, tx, { ...question, action: 'request' });
  if (!eligibility.allowed) {
    const detail = explainRefusal(eligibility, `${caller.principal.name} may not extend this session`);
    return {
      notEligible: new TetherError('not_eligible', detail, { extra: { policies: eligibility.policies } }),
      policies: eligibility.policies,
    };
  }
  const auto = await askPolicy(ctx, tx, { ...question, action: 'auto_approve' });
  return { autoApproved: auto.allowed, policies: eligibility.policies, autoPolicies: auto.policies };
}

interface DecidedExtension {
  session: Session;
  privilege: Privilege;
  ask: ExtensionAsk;
  bounds: ExtensionBounds;
  now: number;
  autoApproved: boolean;
  policies: string[];
  autoPolicies: string[];
}

/** Writes the extension request and its audit record; applies it at once when policy approved it. */
async function recordExtensionRequest(
  ctx: BrokerContext,
  tx: TxHandle,
  d: DecidedExtension,
): Promise<AccessRequest> {
  const { session, now } = d;
  const pending: AccessRequest = {
    id: newId('request'),
    tenantId: session.tenantId,
    kind: 'extension',
    sessionId: session.id,
    principalId: session.principalId,
    privilegeId: session.privilegeId,
    ticket: session.ticket,
    justification: d.ask.justification,
    durationSeconds: d.ask.bySeconds,
    state: 'pending',
    approvalsRequired: d.privilege.approval.approvals,
    createdAt: now,
    expiresAt: now + ctx.config.requestTtlSeconds * 1000,
    resolvedAt: null,
    resolvedBy: null,
    activationExpiresAt: null,
    policies: d.policies,
  };
  const request = d.autoApproved
    ? { ...approvedAt(pending, now, ctx.config, null), policies: [...d.policies, ...d.autoPolicies] }
    : pending;
  try {
    await insertRequest(tx, request);
  } catch (err) {
    if (isUniqueViolation(err))
      throw new TetherError(
        'extension_pending',
        `session ${session.id} already has a pending extension request`,
      );
    throw err;
  }
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
    policies: d.policies,
    details: {
      kind: 'extension',
      session: session.id,
      privilege: d.privilege.name,
      extension_s: d.ask.bySeconds,
      duration_s: d.bounds.totalSeconds,
      justification: d.ask.justification,
    },
  });
  if (!d.autoApproved) return request;
  await recordAudit(tx, request.tenantId, now, {
    ...common,
    actor: 'policy',
    action: 'request.approved',
    outcome: 'success',
    policies: d.autoPolicies,
    details: { auto_approved: true, kind: 'extension', session: session.id },
  });
  await applyExtension(ctx, tx, {
    request,
    session,
    privilege: d.privilege,
    approvers: [],
    actor: 'policy',
    policies: d.autoPolicies,
    at: now,
  });
  return request;
}

/** A session that lasts no longer than the workload token it was exchanged for cannot be extended past it. */
async function assertNotBoundToSubjectToken(tx: TxHandle, session: Session): Promise<void> {
  const link = await findFederatedRequest(tx, session.requestId);
  if (!link) return;
  const trust = await findFederation(tx, session.tenantId, link.federationId);
  if (trust?.endsWithSubjectToken)
    throw new TetherError(
      'invalid_request',
      `session ${session.id} lasts no longer than the workload token it was exchanged for (trust ${trust.name}); exchange a new token`,
    );
}
