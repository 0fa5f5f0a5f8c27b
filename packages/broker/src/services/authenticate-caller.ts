import { TetherError } from '@tether/protocol';
import { ApiTokenRejected, verifyApiToken } from '../auth/api-token.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findTenantById } from '../store/repositories/tenants.js';
import type { BrokerContext, Caller } from './context.js';

/**
 * Turns an `Authorization` header into the caller. The principal is read live on every call,
 * so disabling it takes effect at once, whatever tokens it still holds.
 */
export async function authenticateCaller(
  ctx: BrokerContext,
  authorization: string | undefined,
): Promise<Caller> {
  const match = authorization ? /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization.trim()) : null;
  if (!match?.[1])
    throw new TetherError(
      'unauthenticated',
      'send Authorization: Bearer <token> (get one at POST /oauth/token)',
    );
  let claims: Awaited<ReturnType<typeof verifyApiToken>>;
  try {
    claims = await verifyApiToken(ctx.keys, match[1], {
      issuer: ctx.config.publicUrl,
      now: ctx.clock.now(),
      clockToleranceSeconds: ctx.config.clockToleranceSeconds,
    });
  } catch (err) {
    if (err instanceof ApiTokenRejected) throw new TetherError('invalid_token', err.message);
    throw err;
  }
  const principal = await findPrincipal(ctx.store, claims.tenantId, claims.principalId);
  const tenant = await findTenantById(ctx.store, claims.tenantId);
  if (!principal || !tenant)
    throw new TetherError('invalid_token', 'the token names a principal that no longer exists');
  if (!principal.enabled) throw new TetherError('principal_disabled', 'the principal is disabled');
  return { principal, tenant };
}
