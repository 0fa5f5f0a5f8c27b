import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import {
  applyExtension,
  extensionFacts,
  extensionRefusal,
  lockExtendedSession,
  voidExtension,
} from '../core/apply-extension.js';
import { recordRefusal } from '../core/audit-refusal.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { writeExpiry } from '../core/expire-requests.js';
import { queueRequestNotification } from '../core/notification-outbox.js';
import { askPolicy, explainRefusal } from '../core/policy-facts.js';
import { readRelationship } from '../core/relationship-trust.js';
import { assertContractActive } from '../domain/contract.js';
import type { Principal } from '../domain/principal.js';
import type { Privilege } from '../domain/privilege.js';
import type { Relationship } from '../domain/relationship.js';
import {
  type AccessRequest,
  applyReview,
  assertReviewable,
  expire,
  type Review,
  type ReviewDecision,
  type ReviewOutcome,
} from '../domain/request.js';
import type { Session } from '../domain/session.js';
import { inTransaction, isUniqueViolation, type TxHandle } from '../store/database.js';
import { groupIdsOf } from '../store/repositories/groups.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import {
  findRequest,
  insertReview,
  listReviews,
  lockRequest,
  updateRequestState,
} from '../store/repositories/requests.js';
import {
  approvalsRequired,
  assertProviderApprover,
  permittedByRelationship,
  withSides,
} from './review-sides.js';

export interface ReviewResult {
  request: AccessRequest;
  transition: 'approved' | 'denied' | null;
}

/** Refusals that are worth an audit record: someone tried to review what they may not. */
const AUDITED_REFUSALS = new Set([
  'self_approval_forbidden',
  'approver_not_eligible',
  'fresh_verification_required',
]);

/**
 * A privilege may ask that approvals come from a person who verified themselves with a passkey
 * within the last `freshVerificationSeconds` (in the console): a key file, a token or an older
 * sign-in is not enough.
 */
function assertFreshVerification(
  privilege: { name: string; approval: { freshVerificationSeconds?: number } } | undefined,
  caller: Caller,
  now: number,
): void {
  const within = privilege?.approval.freshVerificationSeconds;
  if (within === undefined) return;
  if (caller.verifiedAt === undefined || now - caller.verifiedAt > within * 1000)
    throw new TetherError(
      'fresh_verification_required',
      `approving ${privilege?.name} needs a passkey verification within the last ${within} s: approve it in the console`,
      { extra: { fresh_verification: within } },
    );
}

/**
 * One approver approves or denies a pending request. The request row is locked for the
 * whole decision, so concurrent reviews are applied one after another and exactly one of
 * them can make the transition. An extension request's session is locked too (first): the
 * approval that completes it moves the session's hard expiry in the same transaction, and an
 * approval of an extension whose session has ended (or could no longer take it) cancels the
 * request and is refused.
 */
export async function reviewRequest(
  ctx: BrokerContext,
  caller: Caller,
  requestId: string,
  decision: ReviewDecision,
  comment: string,
): Promise<ReviewResult> {
  const tenantId = caller.tenant.id;
  try {
    type Concluded = ReviewResult | 'expired' | { voided: TetherError };
    const result = await inTransaction(ctx.store, async (tx): Promise<Concluded> => {
      const extended = await lockExtendedSession(tx, tenantId, requestId);
      const request = await lockRequest(tx, tenantId, requestId);
      if (!request)
        throw new TetherError('not_found', `no request ${JSON.stringify(requestId)} in this tenant`);
      const now = ctx.clock.now();
      const expired = expire(request, now);
      if (expired) {
        // Commit the expiry, then refuse: the transition is real even though the review is not.
        await writeExpiry(tx, expired, now);
        return 'expired';
      }
      const previous = await withSides(tx, tenantId, await listReviews(tx, tenantId, request.id));
      // The domain rules first (pending, not the requester, not twice), so their codes win.
      assertReviewable(request, previous, caller.principal.id, now);
      const { policies, privilege, requester, relationship } = await assertMayReview(
        ctx,
        tx,
        caller,
        request,
        extended,
      );
      const required = approvalsRequired(request, relationship);
      if (decision === 'approve') {
        assertFreshVerification(privilege, caller, now);
        // Out of contract, nothing is approved into a session; the sweeper cancels the request.
        assertContractActive(requester, now);
      }
      const voided =
        decision === 'approve' && request.kind === 'extension'
          ? extensionRefusal(request, extended, privilege, now)
          : null;
      if (voided) {
        // Committed, then refused: the request can never apply, whoever approves it.
        await voidExtension(tx, request, now, voided, caller.principal.id);
        return { voided };
      }
      const outcome = applyReview(
        { ...request, approvalsRequired: required.customer },
        previous,
        {
          reviewerId: caller.principal.id,
          decision,
          comment,
          policies,
          createdAt: now,
          ...(caller.principal.home ? { side: 'provider' as const } : {}),
        },
        ctx.config,
        required.provider,
      );
      try {
        await insertReview(tx, tenantId, request.id, outcome.review);
      } catch (err) {
        if (isUniqueViolation(err))
          throw new TetherError('duplicate_review', 'this principal has already reviewed this request');
        throw err;
      }
      const common = {
        requestId: request.id,
        ticket: request.ticket,
        principalId: request.principalId,
        target: request.id,
      };
      await recordAudit(tx, tenantId, now, {
        ...common,
        actor: caller.principal.id,
        action: decision === 'approve' ? 'request.review.approve' : 'request.review.deny',
        outcome: 'success',
        policies,
        details: { comment, ...(caller.principal.home ? { side: 'provider' } : {}) },
      });
      if (outcome.transition) {
        await writeTransition(ctx, tx, { caller, outcome, previous, policies, privilege, extended, now });
      }
      return { request: outcome.request, transition: outcome.transition };
    });
    if (result === 'expired') {
      throw new TetherError('request_expired', `request ${requestId} expired before it was resolved`);
    }
    if ('voided' in result) throw result.voided;
    return result;
  } catch (err) {
    if (err instanceof TetherError && AUDITED_REFUSALS.has(err.code)) {
      const refusal: TetherError = err;
      const attempted = await findRequest(ctx.store, tenantId, requestId);
      await recordRefusal(ctx, tenantId, {
        actor: caller.principal.id,
        action: `request.review.${decision}`,
        target: requestId,
        requestId,
        ticket: attempted?.ticket ?? null,
        principalId: attempted?.principalId ?? null,
        details: { code: refusal.code, reason: refusal.detail },
      });
    }
    throw err;
  }
}

interface Transition {
  caller: Caller;
  outcome: ReviewOutcome;
  previous: readonly Review[];
  policies: string[];
  privilege: Privilege;
  /** The session an extension request extends (locked). */
  extended: Session | undefined;
  now: number;
}

/**
 * Writes the transition a review made (approved or denied) and its audit record; an approved
 * extension is applied to its session in the same transaction.
 */
async function writeTransition(ctx: BrokerContext, tx: TxHandle, t: Transition): Promise<void> {
  const { outcome, caller, now } = t;
  const request = outcome.request;
  if (!(await updateRequestState(tx, request, 'pending'))) {
    throw new TetherError('request_not_pending', `request ${request.id} was resolved concurrently`);
  }
  const approvers = [
    ...t.previous.filter((r) => r.decision === 'approve').map((r) => r.reviewerId),
    caller.principal.id,
  ];
  await recordAudit(tx, request.tenantId, now, {
    requestId: request.id,
    ticket: request.ticket,
    principalId: request.principalId,
    target: request.id,
    actor: caller.principal.id,
    action: outcome.transition === 'approved' ? 'request.approved' : 'request.denied',
    outcome: 'success',
    policies: t.policies,
    details:
      outcome.transition === 'approved'
        ? { activation_expires_at: request.activationExpiresAt, approvals: approvers.length }
        : { comment: outcome.review.comment },
  });
  await queueRequestNotification(
    tx,
    outcome.transition === 'approved' ? 'request.approved' : 'request.denied',
    request,
    now,
    caller.principal.name,
  );
  if (outcome.transition === 'approved' && t.extended) {
    await applyExtension(ctx, tx, {
      request,
      session: t.extended,
      privilege: t.privilege,
      approvers,
      actor: caller.principal.id,
      policies: t.policies,
      at: now,
    });
  }
}

/**
 * The reviewer must be allowed by the privilege's approver list (when it has one) and by
 * Cedar `approve` (for an extension, with `context.is_extension`); a provider operator's seat
 * must instead be a provider approver of the request's relationship, and then the customer's
 * acceptance of the relationship is its permit unless a customer `forbid` applies. Returns the
 * policy ids that permitted it, the privilege, and the (verified) relationship.
 */
async function assertMayReview(
  ctx: BrokerContext,
  tx: TxHandle,
  caller: Caller,
  request: AccessRequest,
  extended: Session | undefined,
): Promise<{
  policies: string[];
  privilege: Privilege;
  requester: Principal;
  relationship: Relationship | undefined;
}> {
  const privilege = await findPrivilege(tx, request.tenantId, request.privilegeId);
  const requester = await findPrincipal(tx, request.tenantId, request.principalId);
  if (!privilege || !requester) {
    throw new TetherError(
      'approver_not_eligible',
      'the privilege or the requester of this request no longer exists',
    );
  }
  const relationship = request.relationshipId
    ? await readRelationship(tx, ctx.kek, request.tenantId, request.relationshipId)
    : undefined;
  if (caller.principal.home) {
    await assertProviderApprover(tx, caller, privilege, relationship, ctx.clock.now());
  } else if (!(await isNamedApprover(tx, privilege, caller))) {
    throw new TetherError(
      'approver_not_eligible',
      `${caller.principal.name} is not an approver of ${privilege.name}`,
    );
  }
  const decision = await askPolicy(ctx, tx, {
    action: 'approve',
    actor: caller.principal,
    requester,
    privilege,
    ticket: request.ticket,
    ...(request.kind === 'extension'
      ? extensionFacts(request, extended)
      : { durationSeconds: request.durationSeconds }),
    reason: request.justification,
    timeZone: caller.tenant.timeZone,
    relationship,
  });
  if (!decision.allowed && !permittedByRelationship(caller, decision)) {
    throw new TetherError(
      'approver_not_eligible',
      explainRefusal(decision, `${caller.principal.name} may not review this request`),
      {
        extra: { policies: decision.policies },
      },
    );
  }
  return { policies: decision.policies, privilege, requester, relationship };
}

async function isNamedApprover(tx: TxHandle, privilege: Privilege, caller: Caller): Promise<boolean> {
  const { principals, groups } = privilege.approval.approvers;
  if (principals.length === 0 && groups.length === 0) return true;
  if (principals.includes(caller.principal.id)) return true;
  const memberOf = await groupIdsOf(tx, caller.tenant.id, caller.principal.id);
  return memberOf.some((g) => groups.includes(g));
}
