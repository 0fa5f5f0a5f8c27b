import { DpopError } from '@tether-broker/pep';
import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { issueApiToken } from '../auth/api-token.js';
import { SignedAssertionRefused, verifyClientAssertion } from '../auth/client-assertion.js';
import { OAuthError } from '../auth/oauth-error.js';
import { DEVICE_CODE_GRANT, exchangeDeviceCode } from '../console/device-login.js';
import { recordRefusal } from '../core/audit-refusal.js';
import { verifyBrokerProof } from '../core/broker-dpop.js';
import type { BrokerContext } from '../core/context.js';
import { assertSeatCovered } from '../core/seats.js';
import { type DelegationForm, delegateSession, isDelegation } from '../sessions/delegate-session.js';
import { type ExchangeForm, exchangeToken, TOKEN_EXCHANGE_GRANT } from '../sessions/exchange-token.js';
import { refreshSession } from '../sessions/refresh-session.js';
import { inTransaction } from '../store/database.js';

/** Every parameter the token endpoint reads, across its grants. */
export interface TokenRequest extends ExchangeForm, DelegationForm {
  grant_type: string;
  refresh_token?: string | undefined;
  client_assertion_type?: string | undefined;
  client_assertion?: string | undefined;
  client_id?: string | undefined;
  scope?: string | undefined;
  /** RFC 8628 device authorization grant. */
  device_code?: string | undefined;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  scope?: string;
  refresh_token?: string;
  /** Token exchange only (RFC 8693 §2.2.1). */
  issued_token_type?: string;
  /** Token exchange only: the session the tokens belong to. */
  session_id?: string;
}

export const GRANT_TYPES = [
  'client_credentials',
  'refresh_token',
  TOKEN_EXCHANGE_GRANT,
  DEVICE_CODE_GRANT,
] as const;

/** `POST /oauth/token`: the grants this broker serves. */
export async function issueToken(
  ctx: BrokerContext,
  form: TokenRequest,
  dpop: string | string[] | undefined,
): Promise<TokenResponse> {
  switch (form.grant_type) {
    case 'client_credentials':
      return clientCredentials(ctx, form, dpop);
    case 'refresh_token': {
      const tokens = await refreshSession(ctx, form.refresh_token, dpop);
      return {
        access_token: tokens.accessToken,
        token_type: 'DPoP',
        expires_in: tokens.expiresIn,
        refresh_token: tokens.refreshToken,
      };
    }
    case DEVICE_CODE_GRANT:
      return exchangeDeviceCode(ctx, form, dpop);
    case TOKEN_EXCHANGE_GRANT:
      // With an actor token, RFC 8693 delegation: a sub-session of the subject token's session.
      return isDelegation(form) ? delegateSession(ctx, form, dpop) : exchangeToken(ctx, form, dpop);
    default:
      throw new OAuthError(
        'unsupported_grant_type',
        `grant_type ${JSON.stringify(form.grant_type)} is not supported`,
      );
  }
}

/** A principal's own credentials (RFC 7523 client assertion) for a broker-API token. */
async function clientCredentials(
  ctx: BrokerContext,
  form: TokenRequest,
  dpop: string | string[] | undefined,
): Promise<TokenResponse> {
  const now = ctx.clock.now();
  const issuer = ctx.config.publicUrl;
  // With a DPoP proof the token is bound to its key (RFC 9449 §5); without one it is a Bearer token.
  let jkt: string | undefined;
  if (dpop !== undefined) {
    try {
      jkt = (await verifyBrokerProof(ctx, dpop, { method: 'POST', path: '/oauth/token' })).jkt;
    } catch (err) {
      if (err instanceof DpopError) throw new OAuthError(err.code, err.message);
      throw err;
    }
  }
  let client: Awaited<ReturnType<typeof verifyClientAssertion>>;
  try {
    client = await verifyClientAssertion(ctx.store, form, {
      audiences: [`${issuer}/oauth/token`, issuer],
      maxAgeSeconds: ctx.config.clientAssertionMaxAgeSeconds,
      clockToleranceSeconds: ctx.config.clockToleranceSeconds,
      now,
    });
  } catch (err) {
    if (err instanceof SignedAssertionRefused) await recordFailedLogin(ctx, err);
    throw err;
  }
  // A provider operator's seat gets a token only while a relationship covers it.
  try {
    await assertSeatCovered(ctx, client.principal, now);
  } catch (err) {
    if (err instanceof TetherError) throw new OAuthError('invalid_client', err.detail);
    throw err;
  }
  const { token, expiresIn } = await issueApiToken(ctx.keys, client.principal, {
    issuer,
    ttlSeconds: ctx.config.apiTokenTtlSeconds,
    now,
    jkt,
    clientKid: client.kid,
  });
  await inTransaction(ctx.store, (tx) =>
    recordAudit(tx, client.principal.tenantId, now, {
      actor: client.principal.id,
      action: 'auth.token_issued',
      target: client.principal.id,
      outcome: 'success',
      principalId: client.principal.id,
      details: {
        kid: client.kid,
        grant: 'client_credentials',
        expires_in: expiresIn,
        ...(jkt ? { jkt } : {}),
      },
    }),
  );
  return {
    access_token: token,
    token_type: jkt ? 'DPoP' : 'Bearer',
    expires_in: expiresIn,
    scope: 'tether:api',
  };
}

/**
 * A refused login whose assertion the principal really signed (expired, replayed, disabled…)
 * goes into its tenant's audit trail; the assertion itself is never recorded.
 */
async function recordFailedLogin(ctx: BrokerContext, err: SignedAssertionRefused): Promise<void> {
  await recordRefusal(ctx, err.principal.tenantId, {
    actor: err.principal.id,
    action: 'auth.token_issued',
    target: err.principal.id,
    principalId: err.principal.id,
    details: { reason: err.message },
  });
}
