import { TetherError } from '@tether/protocol';
import { recordAudit } from '../audit/record.js';
import type { Privilege } from '../domain/privilege.js';
import {
  type AccessRequest,
  applyReview,
  assertReviewable,
  expire,
  type ReviewDecision,
} from '../domain/request.js';
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
import { recordRefusal } from './audit-refusal.js';
import type { BrokerContext, Caller } from './context.js';
import { writeExpiry } from './expire-requests.js';
import { askPolicy, explainRefusal } from './policy-facts.js';

export interface ReviewResult {
  request: AccessRequest;
  transition: 'approved' | 'denied' | null;
}

/** Refusals that are worth an audit record: someone tried to review what they may not. */
const AUDITED_REFUSALS = new Set(['self_approval_forbidden', 'approver_not_eligible']);

/**
 * One approver approves or denies a pending request. The request row is locked for the
 * whole decision, so concurrent reviews are applied one after another and exactly one of
 * them can make the transition.
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
    const result = await inTransaction(ctx.store, async (tx): Promise<ReviewResult | 'expired'> => {
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
      const previous = await listReviews(tx, tenantId, request.id);
      // The domain rules first (pending, not the requester, not twice), so their codes win.
      assertReviewable(request, previous, caller.principal.id, now);
      const policies = await assertMayReview(ctx, tx, caller, request);
      const outcome = applyReview(
        request,
        previous,
        { reviewerId: caller.principal.id, decision, comment, policies, createdAt: now },
        ctx.config,
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
        details: { comment },
      });
      if (outcome.transition) {
        if (!(await updateRequestState(tx, outcome.request, 'pending'))) {
          throw new TetherError('request_not_pending', `request ${request.id} was resolved concurrently`);
        }
        await recordAudit(tx, tenantId, now, {
          ...common,
          actor: caller.principal.id,
          action: outcome.transition === 'approved' ? 'request.approved' : 'request.denied',
          outcome: 'success',
          policies,
          details:
            outcome.transition === 'approved'
              ? {
                  activation_expires_at: outcome.request.activationExpiresAt,
                  approvals: previous.filter((r) => r.decision === 'approve').length + 1,
                }
              : { comment },
        });
      }
      return { request: outcome.request, transition: outcome.transition };
    });
    if (result === 'expired') {
      throw new TetherError('request_expired', `request ${requestId} expired before it was resolved`);
    }
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

/**
 * The reviewer must be allowed by the privilege's approver list (when it has one) and by
 * Cedar `approve`. Returns the policy ids that permitted it.
 */
async function assertMayReview(
  ctx: BrokerContext,
  tx: TxHandle,
  caller: Caller,
  request: AccessRequest,
): Promise<string[]> {
  const privilege = await findPrivilege(tx, request.tenantId, request.privilegeId);
  const requester = await findPrincipal(tx, request.tenantId, request.principalId);
  if (!privilege || !requester) {
    throw new TetherError(
      'approver_not_eligible',
      'the privilege or the requester of this request no longer exists',
    );
  }
  if (!(await isNamedApprover(tx, privilege, caller))) {
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
    durationSeconds: request.durationSeconds,
    reason: request.justification,
    timeZone: caller.tenant.timeZone,
  });
  if (!decision.allowed) {
    throw new TetherError(
      'approver_not_eligible',
      explainRefusal(decision, `${caller.principal.name} may not review this request`),
      {
        extra: { policies: decision.policies },
      },
    );
  }
  return decision.policies;
}

async function isNamedApprover(tx: TxHandle, privilege: Privilege, caller: Caller): Promise<boolean> {
  const { principals, groups } = privilege.approval.approvers;
  if (principals.length === 0 && groups.length === 0) return true;
  if (principals.includes(caller.principal.id)) return true;
  const memberOf = await groupIdsOf(tx, caller.tenant.id, caller.principal.id);
  return memberOf.some((g) => groups.includes(g));
}
