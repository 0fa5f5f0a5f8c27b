import { TetherError } from '@tether-broker/protocol';
import type { Principal } from '../domain/principal.js';
import type { Privilege } from '../domain/privilege.js';
import type { AccessRequest } from '../domain/request.js';
import type { TxHandle } from '../store/database.js';
import { groupIdsOf } from '../store/repositories/groups.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { listReviews } from '../store/repositories/requests.js';
import type { BrokerContext } from './context.js';
import { askPolicy } from './policy-facts.js';

/**
 * Activation judges the request's approvals again, against the approval rule as it stands now:
 * an approval was a decision about who could approve *then*. Each approving review counts only
 * if its approver still exists, is enabled, is still a named approver of the privilege (its
 * principal list or one of its groups) and is still permitted by the tenant's Cedar `approve`
 * policies; together they must reach the privilege's current number of approvals. A request
 * approved by Cedar `auto_approve` (no reviews) must still be auto-approved.
 *
 * Throws `approval_no_longer_valid` (nothing written) saying which approvals lapsed. A missing
 * privilege is left to startSession, which refuses it as `request_not_approved`.
 */
export async function assertApprovalStillHolds(
  ctx: BrokerContext,
  tx: TxHandle,
  request: AccessRequest,
  requester: Principal,
  timeZone: string,
  /** A federated workload's claim tags, as its request was decided with (token exchange). */
  principalTags?: Record<string, string>,
): Promise<void> {
  const privilege = await findPrivilege(tx, request.tenantId, request.privilegeId);
  if (!privilege || request.kind !== 'access') return;
  const question = {
    requester,
    privilege,
    ticket: request.ticket,
    durationSeconds: request.durationSeconds,
    reason: request.justification,
    timeZone,
    principalTags,
  };
  const approvals = (await listReviews(tx, request.tenantId, request.id)).filter(
    (r) => r.decision === 'approve',
  );
  if (approvals.length === 0) {
    const auto = await askPolicy(ctx, tx, { ...question, action: 'auto_approve', actor: requester });
    if (!auto.allowed) {
      throw new TetherError(
        'approval_no_longer_valid',
        'the request was approved by policy (auto_approve), and the policies no longer approve it',
      );
    }
    return;
  }
  const lapsed: string[] = [];
  let valid = 0;
  for (const review of approvals) {
    const approver = await findPrincipal(tx, request.tenantId, review.reviewerId);
    const why = !approver
      ? `approver ${review.reviewerId} no longer exists`
      : !approver.enabled
        ? `${approver.name} is disabled`
        : !(await isNamedApprover(tx, privilege, approver))
          ? `${approver.name} is no longer an approver of ${privilege.name}`
          : !(await askPolicy(ctx, tx, { ...question, action: 'approve', actor: approver })).allowed
            ? `policy no longer lets ${approver.name} approve it`
            : undefined;
    if (why) lapsed.push(why);
    else valid++;
  }
  const needed = privilege.approval.approvals;
  if (valid < needed) {
    throw new TetherError(
      'approval_no_longer_valid',
      `${valid} of the request's approvals still count and ${privilege.name} now needs ${needed}` +
        (lapsed.length > 0 ? ` (${lapsed.join('; ')})` : ''),
      { extra: { approvals_valid: valid, approvals_required: needed } },
    );
  }
}

/** The privilege's approver list as it stands (an empty list leaves it to Cedar alone). */
async function isNamedApprover(tx: TxHandle, privilege: Privilege, approver: Principal): Promise<boolean> {
  const { principals, groups } = privilege.approval.approvers;
  if (principals.length === 0 && groups.length === 0) return true;
  if (principals.includes(approver.id)) return true;
  const memberOf = await groupIdsOf(tx, approver.tenantId, approver.id);
  return memberOf.some((g) => groups.includes(g));
}
