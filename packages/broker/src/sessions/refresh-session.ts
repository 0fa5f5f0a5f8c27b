import { recordAudit } from '../audit/record.js';
import { OAuthError } from '../auth/oauth-error.js';
import { spendFailedTokenProof, spendTokenProof, verifyTokenProof } from '../auth/token-proof.js';
import type { BrokerContext } from '../core/context.js';
import { endSessionIn } from '../core/end-session.js';
import { expiryReason } from '../domain/contract.js';
import { idleDetails, isIdle } from '../domain/idle.js';
import { type EndReason, isLive, type Session } from '../domain/session.js';
import { narrowSessionIn } from '../evaluation/apply.js';
import { judgeSession } from '../evaluation/evaluate.js';
import { EvaluationFacts } from '../evaluation/facts.js';
import { readTenantCutoff } from '../revocation/tenant-cutoff.js';
import { inTransaction, type TxHandle } from '../store/database.js';
import { announceUnit } from '../store/group-commit.js';
import { findPrincipal } from '../store/repositories/principals.js';
import {
  findRefreshToken,
  insertRefreshToken,
  lockRefreshToken,
  spendRefreshToken,
} from '../store/repositories/refresh-tokens.js';
import { lockSession, touchSession } from '../store/repositories/sessions.js';
import { issueAccessToken } from '../tokens/access-token.js';
import { hashRefreshToken, newRefreshToken } from '../tokens/refresh.js';
import type { SessionTokens } from './activate-session.js';

/** What a refresh concluded inside its transaction; refusals are thrown only after commit. */
type RefreshOutcome = { ok: Session; at: number; tenantCutoff: number } | { refuse: OAuthError };

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
  // The grant's transaction is on its way: a group commit about to start waits for it.
  const withdraw = announceUnit(ctx.store.db);
  const next = newRefreshToken();
  let outcome: RefreshOutcome;
  try {
    const proof = await verifyTokenProof(ctx, dpopHeader);
    const presentedHash = hashRefreshToken(refreshToken);
    withdraw();
    try {
      // One transaction, one durable commit: the proof's jti, the rotation, the audit record.
      outcome = await inTransaction(ctx.store, async (tx) => {
        const replay = await spendTokenProof(tx, proof);
        if (replay) return { refuse: replay };
        return rotate(ctx, tx, { presentedHash, next, jkt: proof.proof.jkt });
      });
    } catch (err) {
      await spendFailedTokenProof(ctx, proof);
      throw err;
    }
  } finally {
    withdraw();
  }
  if ('refuse' in outcome) throw outcome.refuse;
  // Issued as of the transaction, under the session's lock: a narrowing that commits after
  // it has a later cutoff than this token's iat, so this token cannot slip past it; and dated
  // at or past the tenant's cut-off as read in it (one committed after it refuses this token).
  const access = await issueAccessToken(ctx.keys, outcome.ok, {
    issuer: ctx.config.publicUrl,
    now: outcome.at,
    tenantCutoff: outcome.tenantCutoff,
  });
  return {
    session: outcome.ok,
    accessToken: access.token,
    expiresIn: Math.max(0, Math.floor((access.expiresAt - outcome.at) / 1000)),
    refreshToken: next.token,
  };
}

/** The refresh proper, inside its transaction: checks, re-evaluation, rotation, audit. */
async function rotate(
  ctx: BrokerContext,
  tx: TxHandle,
  presented: { presentedHash: string; next: { hash: string }; jkt: string },
): Promise<RefreshOutcome> {
  const { presentedHash, next, jkt: proofJkt } = presented;
  // Session first, then its token: the same order as ending a session, so a refresh racing
  // an end waits instead of deadlocking.
  const candidate = await findRefreshToken(tx, presentedHash);
  if (!candidate) return grantDenied('unknown refresh token');
  const session = await lockSession(tx, candidate.sessionId);
  // SQLite has one writer and this transaction holds it: the row just read is the row as
  // locked. PostgreSQL reads it again under its row lock.
  const stored = tx.dialect === 'sqlite' ? candidate : await lockRefreshToken(tx, presentedHash);
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
  if (!isLive(session, now)) {
    // A session capped at its principal's contract end ends for that reason, as the sweeper says.
    const principal = await findPrincipal(tx, session.tenantId, session.principalId);
    return end(expiryReason(principal?.contract, session.hardExpiresAt), 'the session has expired');
  }
  // The sweeper ends idle sessions too; a refresh that comes first must not revive one.
  if (isIdle(session, now))
    return end(
      'idle',
      'the session was idle longer than its idle timeout; it has ended',
      idleDetails(session, 'refresh'),
    );
  if (now >= stored.idleExpiresAt)
    return end('idle', 'the refresh token was idle too long; the session has ended');
  // Continuous evaluation, as a re-evaluation job would do it: the session ends, or goes on
  // with what it may still hold (narrowed here, so this refresh's token is the narrower one).
  const verdict = await judgeSession(ctx, new EvaluationFacts(tx), session, now);
  const why = { trigger: { kind: 'refresh' }, why: verdict.outcome === 'keep' ? '' : verdict.why };
  if (verdict.outcome === 'end')
    return end(verdict.reason, `the session can no longer be refreshed: ${verdict.why}`, {
      ...why,
      policies: verdict.policies,
    });
  const current =
    verdict.outcome === 'narrow'
      ? await narrowSessionIn(ctx, tx, session, verdict.grant, now, {
          ...why,
          reason: verdict.reason,
          policies: verdict.policies,
        })
      : session;

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
  return { ok: current, at: now, tenantCutoff: await readTenantCutoff(tx, session.tenantId) };
}
