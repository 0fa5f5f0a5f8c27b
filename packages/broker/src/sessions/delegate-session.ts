import { isTetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { OAuthError } from '../auth/oauth-error.js';
import { recordRefusal } from '../core/audit-refusal.js';
import type { BrokerContext } from '../core/context.js';
import { allocateStatusSlot, SLOT_REUSE_MARGIN_MS } from '../core/status-slots.js';
import {
  actOf,
  type DelegationAsk,
  delegatedBudget,
  delegatedDepth,
  delegatedExpiry,
  delegatedGrant,
  delegatedIdleTimeout,
} from '../domain/delegation.js';
import { newId } from '../domain/ids.js';
import type { AccessRequest } from '../domain/request.js';
import { isLive, type Session } from '../domain/session.js';
import { judgeSession } from '../evaluation/evaluate.js';
import { EvaluationFacts } from '../evaluation/facts.js';
import { readTenantCutoff } from '../revocation/tenant-cutoff.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import { insertRefreshToken } from '../store/repositories/refresh-tokens.js';
import { insertRequest } from '../store/repositories/requests.js';
import { insertSession, listLiveChildIds, lockSession } from '../store/repositories/sessions.js';
import { type OwnAccessTokenClaims, readOwnAccessToken } from '../tokens/access-token.js';
import { newRefreshToken } from '../tokens/refresh.js';
import { sessionTokens } from './activate-session.js';
import {
  ACCESS_TOKEN_TYPE,
  type DelegationForm,
  parentProof,
  readAsk,
  readSubjectToken,
  verifyActorToken,
} from './delegation-request.js';

export type { DelegationForm } from './delegation-request.js';

/** RFC 8693 §2.2.1 answer, plus the sub-session the tokens belong to. */
export interface DelegationAnswer {
  access_token: string;
  issued_token_type: typeof ACCESS_TOKEN_TYPE;
  token_type: 'DPoP';
  expires_in: number;
  refresh_token: string;
  session_id: string;
}

/**
 * Token exchange with an `actor_token` (RFC 8693 §1.1 delegation): the holder of a live
 * session mints, for one run of an agent or tool, a sub-session holding a subset of its grant.
 *
 * - `subject_token`: the parent session's access token, presented with a DPoP proof by the
 *   parent's key for this call (`ath` its hash): holding the token is not enough.
 * - `actor_token`: a JWT (`typ` `tether-actor+jwt`) signed by the key the sub-session will be
 *   bound to, that key in its header (`jwk`); `sub` names the actor, `aud` is the token
 *   endpoint, fresh `iat`/`exp`, single-use `jti`. The actor holds its own key; the parent's
 *   never leaves its holder.
 * - `authorization_details`: one `tether_privilege` entry, the actions and resources asked,
 *   each within the parent's current grant; optional `audience`, `duration` (never past the
 *   parent's hard expiry), `idle_timeout` (never longer than the parent's) and `call_budget`
 *   (JSON: allowed calls per action; the sub-session ends once the PEPs report them made).
 *
 * The sub-session's tokens carry `act` (who acts, and for whom before it); it ends when its
 * parent ends (`parent_ended`), when its holder ends it, or on its own limits. Nesting is
 * bounded by `limits.delegationDepth`. Its request (kind `delegation`) and activation are in
 * the audit trail, naming the parent and the actor.
 *
 * Errors (RFC 6749 JSON): `invalid_request` for unusable parameters or an unusable actor
 * token, `invalid_dpop_proof`, `invalid_grant` for a subject token that is not a live session's
 * with its key's proof, `invalid_authorization_details` (RFC 9396 §5) for anything wider than
 * the parent.
 */
export async function delegateSession(
  ctx: BrokerContext,
  form: DelegationForm,
  dpopHeader: string | string[] | undefined,
): Promise<DelegationAnswer> {
  const subjectToken = readSubjectToken(form);
  const ask = readAsk(form);
  const claims = await readOwnAccessToken(ctx.keys, subjectToken, ctx.config.publicUrl);
  if (!claims || claims.exp * 1000 <= ctx.clock.now())
    throw new OAuthError('invalid_grant', 'the subject token is not a live access token of this broker');
  const parentKey = await parentProof(ctx, dpopHeader, subjectToken, claims);
  const actor = await verifyActorToken(ctx, form.actor_token, parentKey);
  const delegation = { ...ask, actor: actor.name };
  const started = await inTransaction(ctx.store, (tx) =>
    startSubSession(tx, ctx, claims, delegation, actor.jkt),
  ).catch(async (err: unknown) => {
    if (isTetherError(err) && ['invalid_delegation', 'delegation_too_deep'].includes(err.code)) {
      await recordRefusal(ctx, claims.tenant, {
        actor: claims.sub,
        action: 'session.delegate',
        target: claims.sid,
        principalId: claims.sub,
        details: { actor: actor.name, reason: err.detail },
      });
      throw new OAuthError(
        err.code === 'invalid_delegation' ? 'invalid_authorization_details' : 'invalid_request',
        err.detail,
      );
    }
    if (isTetherError(err) && err.code === 'session_not_live')
      throw new OAuthError('invalid_grant', err.detail);
    throw err;
  });
  const tokens = await sessionTokens(ctx, started);
  return {
    access_token: tokens.accessToken,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'DPoP',
    expires_in: tokens.expiresIn,
    refresh_token: tokens.refreshToken,
    session_id: tokens.session.id,
  };
}

/**
 * In one transaction, with the parent locked: the parent is live and the token is current for
 * it, the asked sub-session fits it, policy lets it start; then the delegation request, the
 * sub-session, its refresh token and their audit records.
 */
async function startSubSession(
  tx: TxHandle,
  ctx: BrokerContext,
  claims: OwnAccessTokenClaims,
  ask: DelegationAsk,
  jkt: string,
) {
  const now = ctx.clock.now();
  const parent = await lockSession(tx, claims.sid);
  if (!parent || parent.tenantId !== claims.tenant || parent.jkt !== claims.cnf.jkt)
    throw new OAuthError('invalid_grant', 'the subject token is not a live access token of this broker');
  assertTokenCurrent(parent, claims, await readTenantCutoff(tx, parent.tenantId), now);
  // A session may hand out only so many live sub-sessions: each is a status slot and a stream event.
  if ((await listLiveChildIds(tx, parent.id)).length >= ctx.config.limits.subSessionsPerSession)
    throw new OAuthError(
      'invalid_request',
      `session ${parent.id} already has ${ctx.config.limits.subSessionsPerSession} live sub-sessions (limits.subSessionsPerSession); end one first`,
    );
  // What a sub-session does would not be in its parent's recording.
  const privilege = await findPrivilege(tx, parent.tenantId, parent.privilegeId);
  if (privilege && privilege.recording !== 'none')
    throw new OAuthError(
      'invalid_request',
      `${privilege.name} requires its sessions to run recorded; a sub-session's actions would not be, so it delegates nothing`,
    );
  const grant = delegatedGrant(parent.grant, ask);
  const hardExpiresAt = delegatedExpiry(parent, ask, now);
  const delegation = {
    parentSessionId: parent.id,
    depth: delegatedDepth(parent, ctx.config.limits.delegationDepth),
    act: actOf(ask.actor, parent),
    callBudget: delegatedBudget(grant, ask),
    callsMade: {},
  };
  const request = delegationRequest(parent, ask, hardExpiresAt, now);
  await insertRequest(tx, request);
  const id = newId('session');
  const slot = await allocateStatusSlot(tx, parent.tenantId, id, hardExpiresAt + SLOT_REUSE_MARGIN_MS, now);
  const child: Session = {
    ...parent,
    id,
    requestId: request.id,
    jkt,
    activatedAt: now,
    hardExpiresAt,
    statusListId: slot.listId,
    statusIdx: slot.idx,
    grant,
    lastActivityAt: now,
    idleTimeoutSeconds: delegatedIdleTimeout(parent, ask),
    narrowedBefore: null,
    delegation,
  };
  // Policy and trust as for any session: a child starts with what they let it hold now.
  const verdict = await judgeSession(ctx, new EvaluationFacts(tx), child, now);
  if (verdict.outcome === 'end')
    throw new OAuthError('invalid_grant', `the sub-session cannot start: ${verdict.why}`);
  if (verdict.outcome === 'narrow') child.grant = verdict.grant;
  await insertSession(tx, child);
  const refresh = newRefreshToken();
  await insertRefreshToken(tx, {
    tokenHash: refresh.hash,
    tenantId: child.tenantId,
    sessionId: child.id,
    state: 'active',
    createdAt: now,
    idleExpiresAt: Math.min(now + ctx.config.refreshIdleSeconds * 1000, hardExpiresAt),
    usedAt: null,
  });
  await recordAudit(tx, child.tenantId, now, {
    actor: parent.principalId,
    action: 'session.delegated',
    target: child.id,
    outcome: 'success',
    requestId: request.id,
    ticket: child.ticket,
    principalId: child.principalId,
    details: {
      parent: parent.id,
      act: delegation.act,
      depth: delegation.depth,
      jkt,
      privilege: grant.privilege,
      actions: child.grant.actions,
      resources: grant.resources,
      audiences: grant.audiences,
      hard_expires_at: hardExpiresAt,
      ...(delegation.callBudget === null ? {} : { call_budget: delegation.callBudget }),
      ...(child.idleTimeoutSeconds === null ? {} : { idle_timeout: child.idleTimeoutSeconds }),
    },
  });
  return { session: child, refreshToken: refresh.token };
}

/** The token must be usable now: its session live, not issued before a narrowing or the tenant's cut-off. */
function assertTokenCurrent(
  parent: Session,
  claims: OwnAccessTokenClaims,
  tenantCutoff: number,
  now: number,
): void {
  if (!isLive(parent, now))
    throw new OAuthError(
      'invalid_grant',
      `the parent session ${parent.state === 'ended' ? `has ended (${parent.endReason})` : 'has passed its hard expiry'}: it delegates nothing`,
    );
  if (claims.iat < (parent.narrowedBefore ?? 0) || claims.iat < tenantCutoff)
    throw new OAuthError(
      'invalid_grant',
      'the subject token predates a change to its session: refresh it first',
    );
}

/** The record of the delegation: a request its holder approved as it made it. */
function delegationRequest(
  parent: Session,
  ask: DelegationAsk,
  hardExpiresAt: number,
  now: number,
): AccessRequest {
  return {
    id: newId('request'),
    tenantId: parent.tenantId,
    kind: 'delegation',
    sessionId: parent.id,
    principalId: parent.principalId,
    privilegeId: parent.privilegeId,
    ticket: parent.ticket,
    justification: `delegated to ${ask.actor}`,
    durationSeconds: Math.ceil((hardExpiresAt - now) / 1000),
    state: 'approved',
    approvalsRequired: 0,
    createdAt: now,
    expiresAt: now,
    resolvedAt: now,
    resolvedBy: parent.principalId,
    activationExpiresAt: null,
    policies: [],
  };
}

/** Whether a token-endpoint form asks for a delegation (it carries an actor token). */
export function isDelegation(form: { actor_token?: string | undefined }): boolean {
  return form.actor_token !== undefined;
}
