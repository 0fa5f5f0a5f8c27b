import { recordAudit } from '../audit/record.js';
import { issueApiToken } from '../auth/api-token.js';
import { verifyClientAssertion } from '../auth/client-assertion.js';
import { OAuthError } from '../auth/oauth-error.js';
import { inTransaction } from '../store/database.js';
import type { BrokerContext } from './context.js';

export interface TokenRequest {
  grant_type: string;
  client_assertion_type?: string | undefined;
  client_assertion?: string | undefined;
  client_id?: string | undefined;
  scope?: string | undefined;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

/** `POST /oauth/token`: the grants this broker serves. */
export async function issueToken(ctx: BrokerContext, form: TokenRequest): Promise<TokenResponse> {
  if (form.grant_type !== 'client_credentials') {
    throw new OAuthError(
      'unsupported_grant_type',
      `grant_type ${JSON.stringify(form.grant_type)} is not supported`,
    );
  }
  const now = ctx.clock.now();
  const issuer = ctx.config.publicUrl;
  const client = await verifyClientAssertion(ctx.store, form, {
    audiences: [`${issuer}/oauth/token`, issuer],
    maxAgeSeconds: ctx.config.clientAssertionMaxAgeSeconds,
    clockToleranceSeconds: ctx.config.clockToleranceSeconds,
    now,
  });
  const { token, expiresIn } = await issueApiToken(ctx.keys, client.principal, {
    issuer,
    ttlSeconds: ctx.config.apiTokenTtlSeconds,
    now,
  });
  await inTransaction(ctx.store, (tx) =>
    recordAudit(tx, client.principal.tenantId, now, {
      actor: client.principal.id,
      action: 'auth.token_issued',
      target: client.principal.id,
      outcome: 'success',
      principalId: client.principal.id,
      details: { kid: client.kid, grant: 'client_credentials', expires_in: expiresIn },
    }),
  );
  return { access_token: token, token_type: 'Bearer', expires_in: expiresIn, scope: 'tether:api' };
}
