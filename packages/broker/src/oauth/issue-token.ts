import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { issueApiToken } from '../auth/api-token.js';
import {
  checkClientAssertion,
  SignedAssertionRefused,
  spendClientAssertion,
  type VerifiedClient,
} from '../auth/client-assertion.js';
import { OAuthError } from '../auth/oauth-error.js';
import {
  spendFailedTokenProof,
  spendTokenProof,
  type TokenProof,
  verifyTokenProof,
} from '../auth/token-proof.js';
import { DEVICE_CODE_GRANT, exchangeDeviceCode } from '../console/device-login.js';
import { recordRefusal } from '../core/audit-refusal.js';
import type { BrokerContext } from '../core/context.js';
import { assertSeatCovered } from '../core/seats.js';
import { type DelegationForm, delegateSession, isDelegation } from '../sessions/delegate-session.js';
import { type ExchangeForm, exchangeToken, TOKEN_EXCHANGE_GRANT } from '../sessions/exchange-token.js';
import { refreshSession } from '../sessions/refresh-session.js';
import { inTransaction } from '../store/database.js';
import { announceUnit } from '../store/group-commit.js';

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
  // The grant's transaction is on its way: a group commit about to start waits for it.
  const withdraw = announceUnit(ctx.store.db);
  try {
    const now = ctx.clock.now();
    // With a DPoP proof the token is bound to its key (RFC 9449 §5); without one it is a Bearer token.
    const proof = dpop === undefined ? undefined : await verifyTokenProof(ctx, dpop);
    let client: VerifiedClient;
    try {
      client = await authenticateClient(ctx, form, now);
      // A provider operator's seat gets a token only while a relationship covers it.
      await assertSeatCovered(ctx, client.principal, now).catch((err: unknown) => {
        throw err instanceof TetherError ? new OAuthError('invalid_client', err.detail) : err;
      });
    } catch (err) {
      // A verified proof is spent whatever became of its request, as it was before the grant.
      if (proof) await spendFailedTokenProof(ctx, proof);
      throw err;
    }
    // Signed while the grant commits (the signature waits on the crypto thread pool, the
    // commit on the disk); handed out only once the single-use ids and the audit record are durable.
    const issuing = issueApiToken(ctx.keys, client.principal, {
      issuer: ctx.config.publicUrl,
      ttlSeconds: ctx.config.apiTokenTtlSeconds,
      now,
      jkt: proof?.proof.jkt,
      clientKid: client.kid,
    });
    issuing.catch(() => undefined);
    withdraw();
    const refusal = await commitClientCredentials(ctx, proof, client, now);
    if (refusal instanceof SignedAssertionRefused) await recordFailedLogin(ctx, refusal);
    if (refusal) throw refusal;
    const { token, expiresIn } = await issuing;
    return {
      access_token: token,
      token_type: proof ? 'DPoP' : 'Bearer',
      expires_in: expiresIn,
      scope: 'tether:api',
    };
  } finally {
    withdraw();
  }
}

/**
 * One transaction, one durable commit: the proof's jti, the assertion's jti, the audit record
 * of the token. Answers the refusal of a replayed proof or assertion (after commit: the ids
 * spent before it stay spent), else nothing.
 */
async function commitClientCredentials(
  ctx: BrokerContext,
  proof: TokenProof | undefined,
  client: VerifiedClient,
  now: number,
): Promise<OAuthError | undefined> {
  try {
    return await inTransaction(ctx.store, async (tx) => {
      const replay = proof && (await spendTokenProof(tx, proof));
      if (replay) return replay;
      try {
        await spendClientAssertion(tx, client);
      } catch (err) {
        if (err instanceof SignedAssertionRefused) return err;
        throw err;
      }
      await recordAudit(tx, client.principal.tenantId, now, {
        actor: client.principal.id,
        action: 'auth.token_issued',
        target: client.principal.id,
        outcome: 'success',
        principalId: client.principal.id,
        details: {
          kid: client.kid,
          grant: 'client_credentials',
          expires_in: ctx.config.apiTokenTtlSeconds,
          ...(proof ? { jkt: proof.proof.jkt } : {}),
        },
      });
      return undefined;
    });
  } catch (err) {
    if (proof) await spendFailedTokenProof(ctx, proof);
    throw err;
  }
}

/** The client assertion checked (its jti not yet spent); a refusal it signed is audited. */
async function authenticateClient(
  ctx: BrokerContext,
  form: TokenRequest,
  now: number,
): Promise<VerifiedClient> {
  const issuer = ctx.config.publicUrl;
  try {
    return await checkClientAssertion(ctx.store, form, {
      audiences: [`${issuer}/oauth/token`, issuer],
      maxAgeSeconds: ctx.config.clientAssertionMaxAgeSeconds,
      clockToleranceSeconds: ctx.config.clockToleranceSeconds,
      now,
    });
  } catch (err) {
    if (err instanceof SignedAssertionRefused) await recordFailedLogin(ctx, err);
    throw err;
  }
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
