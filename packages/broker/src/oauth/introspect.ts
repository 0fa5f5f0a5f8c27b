import { TetherError } from '@tether-broker/protocol';
import type { BrokerContext, Caller } from '../core/context.js';
import { isIdle } from '../domain/idle.js';
import { hasRole } from '../domain/principal.js';
import { isLive } from '../domain/session.js';
import { findRefreshToken } from '../store/repositories/refresh-tokens.js';
import { findSessionById } from '../store/repositories/sessions.js';
import { readOwnAccessToken } from '../tokens/access-token.js';
import { hashRefreshToken, looksLikeRefreshToken } from '../tokens/refresh.js';

export type Introspection = { active: false } | ({ active: true } & Record<string, unknown>);

const INACTIVE: Introspection = { active: false };

/**
 * RFC 7662 for enforcement points (role `pep`) and admins of the token's own tenant. Anything
 * not live — unknown, expired, ended session, another tenant's — is just `{active: false}`.
 */
export async function introspect(ctx: BrokerContext, caller: Caller, token: string): Promise<Introspection> {
  if (!hasRole(caller.principal, 'pep') && !hasRole(caller.principal, 'admin')) {
    throw new TetherError('forbidden', 'introspection needs the pep or admin role');
  }
  const now = ctx.clock.now();
  if (looksLikeRefreshToken(token)) {
    const stored = await findRefreshToken(ctx.store, hashRefreshToken(token));
    if (stored?.state !== 'active' || stored.tenantId !== caller.tenant.id || now >= stored.idleExpiresAt)
      return INACTIVE;
    const session = await findSessionById(ctx.store, stored.sessionId);
    if (!session || !isLive(session, now) || isIdle(session, now)) return INACTIVE;
    return {
      active: true,
      token_type: 'refresh_token',
      sub: session.principalId,
      client_id: session.principalId,
      sid: session.id,
      exp: Math.floor(stored.idleExpiresAt / 1000),
      cnf: { jkt: session.jkt },
    };
  }
  const claims = await readOwnAccessToken(ctx.keys, token, ctx.config.publicUrl);
  if (!claims || claims.tenant !== caller.tenant.id || now >= claims.exp * 1000) return INACTIVE;
  const session = await findSessionById(ctx.store, claims.sid);
  // An idle session is over even before the sweeper has written its end.
  if (!session || session.tenantId !== caller.tenant.id || !isLive(session, now) || isIdle(session, now))
    return INACTIVE;
  // Issued before the session was narrowed: it carries an entitlement the session no longer has.
  if (session.narrowedBefore !== null && claims.iat < session.narrowedBefore) return INACTIVE;
  return {
    active: true,
    token_type: 'DPoP',
    iss: claims.iss,
    sub: claims.sub,
    client_id: claims.client_id,
    aud: claims.aud,
    exp: claims.exp,
    iat: claims.iat,
    jti: claims.jti,
    sid: claims.sid,
    tenant: claims.tenant,
    cnf: { jkt: claims.cnf.jkt },
    authorization_details: claims.authorization_details,
    session_exp: claims.session_exp,
    ...(claims.ticket ? { ticket: claims.ticket } : {}),
  };
}
