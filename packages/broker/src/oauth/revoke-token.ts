import type { BrokerContext, Caller } from '../core/context.js';
import { endSessionIn } from '../core/end-session.js';
import { hasRole } from '../domain/principal.js';
import { inTransaction } from '../store/database.js';
import { findRefreshToken } from '../store/repositories/refresh-tokens.js';
import { lockSession } from '../store/repositories/sessions.js';
import { readOwnAccessToken } from '../tokens/access-token.js';
import { hashRefreshToken, looksLikeRefreshToken } from '../tokens/refresh.js';

/**
 * RFC 7009: revoking either token of a session ends the session. The holder or an admin of
 * its tenant may do it; for anything else the answer is the same empty success (§2.2), so
 * the endpoint tells a caller nothing about tokens it does not own.
 */
export async function revokeToken(ctx: BrokerContext, caller: Caller, token: string): Promise<void> {
  const sessionId = await sessionOf(ctx, token);
  if (!sessionId) return;
  await inTransaction(ctx.store, async (tx) => {
    const session = await lockSession(tx, sessionId);
    if (!session || session.tenantId !== caller.tenant.id) return;
    if (session.principalId !== caller.principal.id && !hasRole(caller.principal, 'admin')) return;
    await endSessionIn(ctx, tx, session, ctx.clock.now(), 'revoked', caller.principal.id, {
      via: 'oauth_revoke',
    });
  });
}

async function sessionOf(ctx: BrokerContext, token: string): Promise<string | undefined> {
  if (looksLikeRefreshToken(token))
    return (await findRefreshToken(ctx.store, hashRefreshToken(token)))?.sessionId;
  return (await readOwnAccessToken(ctx.keys, token, ctx.config.publicUrl))?.sid;
}
