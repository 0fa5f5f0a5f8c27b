import { DpopError } from '@tether/pep';
import { TetherError } from '@tether/protocol';
import { recordAudit } from '../audit/record.js';
import { OAuthError } from '../auth/oauth-error.js';
import type { Privilege } from '../domain/privilege.js';
import { type EndReason, isLive, type Session } from '../domain/session.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import { findFederatedRequest } from '../store/repositories/federations.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findPrivilege } from '../store/repositories/privileges.js';
import {
  findRefreshToken,
  insertRefreshToken,
  lockRefreshToken,
  spendRefreshToken,
} from '../store/repositories/refresh-tokens.js';
import { findRequest } from '../store/repositories/requests.js';
import { lockSession, touchSession } from '../store/repositories/sessions.js';
import { hashRefreshToken, newRefreshToken } from '../tokens/refresh.js';
import { type SessionTokens, sessionTokens } from './activate-session.js';
import { verifyBrokerProof } from './broker-dpop.js';
import type { BrokerContext } from './context.js';
import { endSessionIn } from './end-session.js';
import { askPolicy } from './policy-facts.js';

/** What a refresh concluded inside its transaction; refusals are thrown only after commit. */
type RefreshOutcome = { ok: Session } | { refuse: OAuthError };

const grantDenied = (description: string): { refuse: OAuthError } => ({
  refuse: new OAuthError('invalid_grant', description),
});

/**
 * `grant_type=refresh_token`: a DPoP proof by the session key, a refresh token never used
 * before. Every refresh re-evaluates the session — live, principal enabled, privilege still
 * granting what the session holds, policy still permitting — and ends it when one fails. A
 * spent token presented again ends the session (`refresh_reuse`): one of its two holders is
 * not the rightful one.
 */
export async function refreshSession(
  ctx: BrokerContext,
  refreshToken: string | undefined,
  dpopHeader: string | string[] | undefined,
): Promise<SessionTokens> {
  if (!refreshToken) throw new OAuthError('invalid_request', 'refresh_token is required');
  let proofJkt: string;
  try {
    proofJkt = (await verifyBrokerProof(ctx, dpopHeader, { method: 'POST', path: '/oauth/token' })).jkt;
  } catch (err) {
    if (err instanceof DpopError) throw new OAuthError(err.code, err.message);
    throw err;
  }
  const presentedHash = hashRefreshToken(refreshToken);
  const next = newRefreshToken();
  const outcome = await inTransaction(ctx.store, async (tx): Promise<RefreshOutcome> => {
    // Session first, then its token: the same order as ending a session, so a refresh racing
    // an end waits instead of deadlocking.
    const candidate = await findRefreshToken(tx, presentedHash);
    if (!candidate) return grantDenied('unknown refresh token');
    const session = await lockSession(tx, candidate.sessionId);
    const stored = await lockRefreshToken(tx, presentedHash);
    if (!session || !stored) return grantDenied('unknown refresh token');
    const now = ctx.clock.now();
    const end = (reason: EndReason, description: string, details: Record<string, unknown> = {}) =>
      endSessionIn(ctx, tx, session, now, reason, null, details).then(() => grantDenied(description));

    // Reuse is checked before the key: a spent token in anyone's hands means the token store
    // of the holder leaked, and the session ends whoever presents it.
    if (stored.state === 'spent')
      return end('refresh_reuse', 'refresh token reuse detected; the session has been ended', {
        same_key: proofJkt === session.jkt,
      });
    if (proofJkt !== session.jkt) return grantDenied('the refresh token is bound to another key');
    if (stored.state !== 'active' || session.state !== 'active') return grantDenied('the session has ended');
    if (!isLive(session, now)) return end('expired', 'the session has expired');
    if (now >= stored.idleExpiresAt)
      return end('idle', 'the refresh token was idle too long; the session has ended');
    const verdict = await reevaluate(ctx, tx, session);
    if (verdict)
      return end(verdict.reason, `the session can no longer be refreshed: ${verdict.why}`, {
        why: verdict.why,
      });

    if (!(await spendRefreshToken(tx, presentedHash, now)))
      return grantDenied('the refresh token has already been used');
    await insertRefreshToken(tx, {
      tokenHash: next.hash,
      tenantId: session.tenantId,
      sessionId: session.id,
      state: 'active',
      createdAt: now,
      idleExpiresAt: Math.min(now + ctx.config.refreshIdleSeconds * 1000, session.hardExpiresAt),
      usedAt: null,
    });
    await touchSession(tx, session.id, now);
    await recordAudit(tx, session.tenantId, now, {
      actor: session.principalId,
      action: 'session.refreshed',
      target: session.id,
      outcome: 'success',
      requestId: session.requestId,
      ticket: session.ticket,
      principalId: session.principalId,
    });
    return { ok: session };
  });
  if ('refuse' in outcome) throw outcome.refuse;
  return sessionTokens(ctx, { session: outcome.ok, refreshToken: next.token });
}

const covers = (granted: readonly string[], held: readonly string[]) =>
  held.every((h) => granted.includes(h));

/** Whether the privilege, as it stands now, still grants everything the session holds. */
export function stillGrants(privilege: Privilege, session: Session): boolean {
  return (
    covers(privilege.actions, session.grant.actions) &&
    covers(privilege.resources, session.grant.resources) &&
    covers(privilege.audiences, session.grant.audiences)
  );
}

/** Continuous evaluation: null when the session may go on, else why it must end. */
async function reevaluate(
  ctx: BrokerContext,
  tx: TxHandle,
  session: Session,
): Promise<{ reason: EndReason; why: string } | null> {
  const principal = await findPrincipal(tx, session.tenantId, session.principalId);
  if (!principal?.enabled) return { reason: 'principal_disabled', why: 'the principal is disabled' };
  const privilege = await findPrivilege(tx, session.tenantId, session.privilegeId);
  if (!privilege) return { reason: 'privilege_deleted', why: 'the privilege was deleted' };
  if (!stillGrants(privilege, session))
    return { reason: 'privilege_changed', why: 'the privilege no longer grants what the session holds' };
  const request = await findRequest(tx, session.tenantId, session.requestId);
  const tenant = await tx.db
    .selectFrom('tenants')
    .select('time_zone')
    .where('id', '=', session.tenantId)
    .executeTakeFirst();
  if (!request || !tenant) throw new TetherError('internal_error', 'session without its request or tenant');
  const decision = await askPolicy(ctx, tx, {
    action: 'request',
    actor: principal,
    requester: principal,
    privilege,
    ticket: session.ticket,
    durationSeconds: request.durationSeconds,
    reason: request.justification,
    timeZone: tenant.time_zone,
    // A federated session is re-evaluated with the token claims its request was decided on.
    principalTags: (await findFederatedRequest(tx, request.id))?.principalTags,
  });
  if (!decision.allowed) return { reason: 'policy_changed', why: 'policy no longer permits this access' };
  return null;
}
