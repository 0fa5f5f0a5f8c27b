import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { capAtContractEnd } from '../domain/contract.js';
import { extensionBounds } from '../domain/extension.js';
import type { Privilege } from '../domain/privilege.js';
import { type AccessRequest, cancel } from '../domain/request.js';
import { isLive, type Session } from '../domain/session.js';
import type { TxHandle } from '../store/database.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { recapRefreshIdleExpiry } from '../store/repositories/refresh-tokens.js';
import { findRequest, updateRequestState } from '../store/repositories/requests.js';
import { lockSession, writeSessionExpiry } from '../store/repositories/sessions.js';
import { setSlotReusableAt } from '../store/repositories/status-lists.js';
import type { BrokerContext } from './context.js';
import { SLOT_REUSE_MARGIN_MS } from './status-slots.js';

/**
 * The session an extension request extends, locked. Called before the request's own lock:
 * asking for an extension locks the session, then the request, and reviews take the same order.
 */
export async function lockExtendedSession(
  tx: TxHandle,
  tenantId: string,
  requestId: string,
): Promise<Session | undefined> {
  const sessionId = (await findRequest(tx, tenantId, requestId))?.sessionId;
  const session = sessionId ? await lockSession(tx, sessionId) : undefined;
  return session?.tenantId === tenantId ? session : undefined;
}

/**
 * What Cedar sees of an extension: `duration_seconds` is the session's whole length once
 * extended, `extension_seconds` the time added.
 */
export function extensionFacts(
  request: AccessRequest,
  session: Session | undefined,
): { durationSeconds: number; extensionSeconds: number } {
  const current = session ? Math.ceil((session.hardExpiresAt - session.activatedAt) / 1000) : 0;
  return { durationSeconds: current + request.durationSeconds, extensionSeconds: request.durationSeconds };
}

/**
 * Why an approval can no longer apply to its session, or null when it can: the session ended
 * or expired (`session_not_live`), or its length would now pass the privilege's maximum, which
 * may have been lowered since the ask (`duration_exceeds_max`).
 */
export function extensionRefusal(
  request: AccessRequest,
  session: Session | undefined,
  privilege: Privilege,
  now: number,
): TetherError | null {
  if (!session || !isLive(session, now)) {
    return new TetherError(
      'session_not_live',
      `session ${request.sessionId} has ended or expired; extension request ${request.id} was cancelled`,
    );
  }
  try {
    extensionBounds(session, privilege, request.durationSeconds);
    return null;
  } catch (err) {
    if (err instanceof TetherError) return err;
    throw err;
  }
}

/**
 * Cancels an extension that can no longer apply, recording why and whose review found it out.
 * The caller commits this, then refuses the review with `refusal`.
 */
export async function voidExtension(
  tx: TxHandle,
  request: AccessRequest,
  now: number,
  refusal: TetherError,
  triggeredBy: string,
): Promise<void> {
  const cancelled = cancel(request, now, 'system');
  if (!(await updateRequestState(tx, cancelled, 'pending'))) {
    throw new TetherError('request_not_pending', `request ${request.id} was resolved concurrently`);
  }
  await recordAudit(tx, request.tenantId, now, {
    actor: 'system',
    action: 'request.cancelled',
    target: request.id,
    outcome: 'success',
    requestId: request.id,
    ticket: request.ticket,
    principalId: request.principalId,
    details: {
      kind: request.kind,
      session: request.sessionId,
      reason: refusal.code,
      detail: refusal.detail,
      triggered_by: triggeredBy,
    },
  });
}

export interface ApprovedExtension {
  request: AccessRequest;
  session: Session;
  privilege: Privilege;
  /** Who approved it (empty when policy did). */
  approvers: string[];
  /** Who made the approval that applies it: the last approver, or `policy`. */
  actor: string;
  policies: string[];
  at: number;
}

/**
 * Applies an approved extension inside the approval's transaction: the hard expiry moves, the
 * status-list slot stays reserved until the new expiry, the refresh tokens' idle expiry is no
 * longer capped by the old one, and `session.extended` is recorded. The session keeps its id,
 * its key binding and its refresh-token chain; the next refresh issues tokens with the new
 * `session_exp`. Throws `session_not_live` or `duration_exceeds_max` (the caller checked both
 * with {@link extensionRefusal}; this holds even if it did not).
 */
export async function applyExtension(
  ctx: Pick<BrokerContext, 'config'>,
  tx: TxHandle,
  e: ApprovedExtension,
): Promise<Session> {
  const { request, session } = e;
  const refusal = extensionRefusal(request, session, e.privilege, e.at);
  if (refusal) throw refusal;
  const asked = extensionBounds(session, e.privilege, request.durationSeconds);
  // Never past the contract window of the session's principal, as it stands now.
  const principal = await findPrincipal(tx, session.tenantId, session.principalId);
  const cappedAt = capAtContractEnd(principal?.contract, asked.hardExpiresAt);
  const bounds = {
    hardExpiresAt: Math.max(session.hardExpiresAt, cappedAt),
    totalSeconds: Math.ceil((Math.max(session.hardExpiresAt, cappedAt) - session.activatedAt) / 1000),
  };
  if (!(await writeSessionExpiry(tx, session.id, bounds.hardExpiresAt))) {
    throw new TetherError('session_not_live', `session ${session.id} has ended`);
  }
  await setSlotReusableAt(tx, {
    listId: session.statusListId,
    idx: session.statusIdx,
    sessionId: session.id,
    reusableAt: bounds.hardExpiresAt + SLOT_REUSE_MARGIN_MS,
  });
  await recapRefreshIdleExpiry(tx, session.id, ctx.config.refreshIdleSeconds * 1000, bounds.hardExpiresAt);
  await recordAudit(tx, session.tenantId, e.at, {
    actor: e.actor,
    action: 'session.extended',
    target: session.id,
    outcome: 'success',
    requestId: request.id,
    ticket: session.ticket,
    principalId: session.principalId,
    policies: e.policies,
    details: {
      extension_request: request.id,
      extension_s: request.durationSeconds,
      previous_hard_expires_at: new Date(session.hardExpiresAt).toISOString(),
      hard_expires_at: new Date(bounds.hardExpiresAt).toISOString(),
      total_duration_s: bounds.totalSeconds,
      ...(bounds.hardExpiresAt < asked.hardExpiresAt ? { capped_at_contract_end: true } : {}),
      approvers: e.approvers,
      auto_approved: e.approvers.length === 0,
    },
  });
  return { ...session, hardExpiresAt: bounds.hardExpiresAt };
}
