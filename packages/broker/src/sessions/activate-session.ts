import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { assertApprovalStillHolds } from '../core/approval-recheck.js';
import { verifyBrokerProof } from '../core/broker-dpop.js';
import { enqueueMints } from '../core/connector-jobs.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { startRecording } from '../core/recording-start.js';
import { lockTrustedRelationship } from '../core/relationship-trust.js';
import { relationshipsCovering } from '../core/seats.js';
import { allocateStatusSlot, SLOT_REUSE_MARGIN_MS } from '../core/status-slots.js';
import { assertTicketStillOpen } from '../core/ticket-facts.js';
import { assertContractActive, capAtContractEnd } from '../domain/contract.js';
import { newId } from '../domain/ids.js';
import type { Principal } from '../domain/principal.js';
import type { RecordedMode } from '../domain/recording.js';
import type { Verdict } from '../domain/reevaluation.js';
import { assertRelationshipUsable, type Relationship } from '../domain/relationship.js';
import type { AccessRequest } from '../domain/request.js';
import { assertActivatable, grantOf, hardExpiry, type Session } from '../domain/session.js';
import { judgeSession } from '../evaluation/evaluate.js';
import { EvaluationFacts } from '../evaluation/facts.js';
import { readTenantCutoff } from '../revocation/tenant-cutoff.js';
import { inTransaction, isUniqueViolation, type TxHandle } from '../store/database.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { insertRefreshToken } from '../store/repositories/refresh-tokens.js';
import { findRequest, lockRequest } from '../store/repositories/requests.js';
import { findSessionByRequest, insertSession } from '../store/repositories/sessions.js';
import { lockTicket } from '../store/repositories/tickets.js';
import { issueAccessToken } from '../tokens/access-token.js';
import { newRefreshToken } from '../tokens/refresh.js';

export interface SessionTokens {
  session: Session;
  accessToken: string;
  expiresIn: number;
  refreshToken: string;
  /** Set when the privilege requires recording: the session must stream it, or it ends. */
  recording?: RecordedMode | undefined;
}

/**
 * Turns an approved request into a session bound to the DPoP key that signed the activation
 * proof. Only the requester, only once, only inside the activation window, only while its
 * approvals satisfy the approval rule as it stands; the session clock starts now.
 */
export async function activateSession(
  ctx: BrokerContext,
  caller: Caller,
  requestId: string,
  dpopHeader: string | string[] | undefined,
): Promise<SessionTokens> {
  // A DPoP-bound API token was already authenticated with this request's one proof: that
  // proof (single-use, so it cannot be checked twice) binds the session to the same key.
  const proof =
    caller.proof ??
    (await verifyBrokerProof(ctx, dpopHeader, {
      method: 'POST',
      path: `/v1/requests/${requestId}/activate`,
    }));
  const started = await inTransaction(ctx.store, async (tx) => {
    // The ticket's row lock before the request's, the order a ticket's close takes them in:
    // a close and this activation then run one after the other (startSession checks it).
    const ticket = (await findRequest(tx, caller.tenant.id, requestId))?.ticket;
    if (ticket) await lockTicket(tx, caller.tenant.id, ticket);
    const request = await lockRequest(tx, caller.tenant.id, requestId);
    if (!request)
      throw new TetherError('not_found', `no request ${JSON.stringify(requestId)} in this tenant`);
    assertActivatable(request, caller.principal.id, ctx.clock.now());
    // Approved then is not enough: removed approvers and a tightened rule count as of now.
    await assertApprovalStillHolds(ctx, tx, request, caller.principal, caller.tenant.timeZone);
    return startSession(tx, ctx, { request, jkt: proof.jkt, actor: caller.principal.id });
  });
  return sessionTokens(ctx, started);
}

/** A session just written, with the refresh token whose hash was stored for it. */
export interface StartedSession {
  session: Session;
  refreshToken: string;
  /** Set when the privilege requires recording. */
  recording?: RecordedMode | undefined;
}

/**
 * Starts the session of an approved request inside the caller's transaction: session row,
 * status-list slot, first refresh token and audit record, together or not at all. The caller
 * has locked the request and checked it may be activated by whoever asks; this refuses a
 * second session for the same request. `details` are added to the audit record.
 *
 * @example
 * ```ts
 * const started = await inTransaction(ctx.store, (tx) => startSession(tx, ctx, { request, jkt, actor }));
 * const tokens = await sessionTokens(ctx, started);
 * ```
 */
export async function startSession(
  tx: TxHandle,
  ctx: BrokerContext,
  start: {
    request: AccessRequest;
    jkt: string;
    actor: string;
    details?: Record<string, unknown>;
    /** Epoch ms the session may not outlive (a subject token's expiry), if any. */
    notAfter?: number | undefined;
  },
): Promise<StartedSession> {
  const { request } = start;
  const now = ctx.clock.now();
  const refresh = newRefreshToken();
  if (await findSessionByRequest(tx, request.id)) {
    throw new TetherError('already_activated', `request ${request.id} has already been activated`);
  }
  await assertTicketStillOpen(tx, request.tenantId, request.ticket);
  const privilege = await findPrivilege(tx, request.tenantId, request.privilegeId);
  if (!privilege)
    throw new TetherError('request_not_approved', 'the privilege of this request no longer exists');
  // A contractor holds nothing outside its contract window, and nothing past its end.
  const principal = await findPrincipal(tx, request.tenantId, request.principalId);
  if (principal) assertContractActive(principal, now);
  // A provider operator's session: only under a relationship still active (locked, so its end
  // cannot slip between this check and the session's row), and never past its end.
  const relationship = await relationshipToStartUnder(ctx, tx, request, principal, now);
  const id = newId('session');
  const uncapped = Math.min(
    hardExpiry(request, privilege, now),
    start.notAfter ?? Number.POSITIVE_INFINITY,
    relationship?.endsAt ?? Number.POSITIVE_INFINITY,
  );
  const hardExpiresAt = capAtContractEnd(principal?.contract, uncapped);
  if (hardExpiresAt <= now)
    throw new TetherError('invalid_request', 'the session would end before it starts: its bound has passed');
  const slot = await allocateStatusSlot(tx, request.tenantId, id, hardExpiresAt + SLOT_REUSE_MARGIN_MS, now);
  const created: Session = {
    id,
    tenantId: request.tenantId,
    requestId: request.id,
    principalId: request.principalId,
    privilegeId: privilege.id,
    ticket: request.ticket,
    jkt: start.jkt,
    state: 'active',
    endReason: null,
    endedBy: null,
    activatedAt: now,
    hardExpiresAt,
    endedAt: null,
    statusListId: slot.listId,
    statusIdx: slot.idx,
    grant: grantOf(privilege),
    lastActivityAt: now,
    // The session keeps the idle timeout it started with; a later privilege change is re-evaluation's matter.
    idleTimeoutSeconds: privilege.idleTimeoutSeconds,
    narrowedBefore: null,
    delegation: null,
    ...(relationship ? { relationshipId: relationship.id } : {}),
  };
  // Continuous evaluation from the first token on: the session starts with what policy and
  // the trust context let it hold now, or it does not start.
  const verdict = await judgeSession(ctx, new EvaluationFacts(tx), created, now);
  if (verdict.outcome === 'end') throw activationRefused(verdict);
  if (verdict.outcome === 'narrow') created.grant = verdict.grant;
  try {
    await insertSession(tx, created);
  } catch (err) {
    if (isUniqueViolation(err))
      throw new TetherError('already_activated', `request ${request.id} has already been activated`);
    throw err;
  }
  await insertRefreshToken(tx, {
    tokenHash: refresh.hash,
    tenantId: created.tenantId,
    sessionId: created.id,
    state: 'active',
    createdAt: now,
    idleExpiresAt: Math.min(now + ctx.config.refreshIdleSeconds * 1000, hardExpiresAt),
    usedAt: null,
  });
  await recordAudit(tx, created.tenantId, now, {
    actor: start.actor,
    action: 'session.activated',
    target: created.id,
    outcome: 'success',
    requestId: request.id,
    ticket: request.ticket,
    principalId: request.principalId,
    details: {
      jkt: start.jkt,
      privilege: privilege.name,
      hard_expires_at: hardExpiresAt,
      ...(hardExpiresAt < uncapped ? { capped_at_contract_end: true } : {}),
      ...(relationship ? { relationship: { id: relationship.id, name: relationship.name } } : {}),
      ...(privilege.idleTimeoutSeconds === null ? {} : { idle_timeout: privilege.idleTimeoutSeconds }),
      ...(verdict.outcome === 'narrow'
        ? { narrowed: { reason: verdict.reason, why: verdict.why, actions: created.grant.actions } }
        : {}),
      ...(privilege.connectors.length === 0 ? {} : { connectors: privilege.connectors }),
      ...(privilege.recording === 'none' ? {} : { recording: privilege.recording }),
      ...start.details,
    },
  });
  // Its downstream credentials are minted once this commits; its end destroys them.
  await enqueueMints(ctx, tx, created, privilege.connectors, now);
  // A recorded session must start streaming its recording within the lapse, or it ends.
  if (privilege.recording === 'none') return { session: created, refreshToken: refresh.token };
  await startRecording(ctx, tx, created, privilege.recording, now);
  return { session: created, refreshToken: refresh.token, recording: privilege.recording };
}

/**
 * The relationship a seat's request was asked under, locked and verified, when it may still
 * start a session: active, in its window, and still covering the seat's operator for the
 * privilege. Undefined for a request not asked under one.
 */
async function relationshipToStartUnder(
  ctx: BrokerContext,
  tx: TxHandle,
  request: AccessRequest,
  principal: Principal | undefined,
  now: number,
): Promise<Relationship | undefined> {
  if (!request.relationshipId) return undefined;
  const relationship = await lockTrustedRelationship(tx, ctx.kek, request.tenantId, request.relationshipId);
  if (!relationship)
    throw new TetherError('relationship_not_active', 'the relationship of this request is gone');
  assertRelationshipUsable(relationship, now);
  const covering = principal ? await relationshipsCovering(ctx, principal, now, request.privilegeId, tx) : [];
  if (!covering.some((r) => r.id === relationship.id))
    throw new TetherError(
      'not_covered_by_relationship',
      `relationship ${relationship.name} no longer covers this operator and privilege`,
    );
  return relationship;
}

/** Why continuous evaluation would not let a session start, as the activation's refusal. */
function activationRefused(verdict: Extract<Verdict, { outcome: 'end' }>): TetherError {
  if (verdict.reason === 'principal_disabled') return new TetherError('principal_disabled', verdict.why);
  if (verdict.reason === 'contract_ended') return new TetherError('contract_not_active', verdict.why);
  if (verdict.reason === 'privilege_deleted')
    return new TetherError('request_not_approved', 'the privilege of this request no longer exists');
  return new TetherError('not_eligible', `the session cannot start: ${verdict.why}`);
}

/**
 * After commit: the session's access token, beside its refresh token. `now` is when the
 * token is issued; a refresh passes the time of its transaction (see refreshSession). The
 * token is dated at or past the tenant's cut-off as read here: one committed before lets it
 * pass, as a refresh right after that cut-off would; one committed after refuses it.
 */
export async function sessionTokens(
  ctx: BrokerContext,
  started: StartedSession,
  now = ctx.clock.now(),
): Promise<SessionTokens> {
  const access = await issueAccessToken(ctx.keys, started.session, {
    issuer: ctx.config.publicUrl,
    now,
    tenantCutoff: await readTenantCutoff(ctx.store, started.session.tenantId),
  });
  return {
    session: started.session,
    accessToken: access.token,
    expiresIn: Math.max(0, Math.floor((access.expiresAt - now) / 1000)),
    refreshToken: started.refreshToken,
    recording: started.recording,
  };
}
