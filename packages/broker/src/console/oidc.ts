import { createHash, randomBytes } from 'node:crypto';
import { TetherError } from '@tether-broker/protocol';
import type { ConsoleOidcBody } from '@tether-broker/protocol/api';
import * as oidc from 'openid-client';
import { recordAudit } from '../audit/record.js';
import { startConsoleSession } from '../auth/console-session.js';
import { openSecret, sealSecret } from '../config/key-encryption.js';
import { requireRole } from '../core/access-control.js';
import { recordRefusal } from '../core/audit-refusal.js';
import type { BrokerContext, Caller } from '../core/context.js';
import type { Principal } from '../domain/principal.js';
import { assertDestination, outboundOf } from '../net/client.js';
import { Unreachable } from '../net/outbound.js';
import { inTransaction, type StoreHandle } from '../store/database.js';
import { toPrincipal } from '../store/repositories/principals.js';
import { findTenantById, findTenantByName } from '../store/repositories/tenants.js';
import type { ConsoleOidcConfigRow } from '../store/schema.js';

/**
 * Console sign-in with a tenant's company OpenID Connect provider (openid-client): the
 * authorization code flow with PKCE (S256), `state` and `nonce`, all kept server-side, taken
 * once, bound to the browser that started the flow (a `SameSite=Lax` cookie, so a callback URL
 * sent to someone else signs nobody in). openid-client checks the ID token (signature, issuer,
 * audience, nonce, expiry); every call to the provider goes through the broker's guarded
 * outbound client. The person is the human principal whose attribute equals the chosen claim:
 * nobody is ever created, and a claim that names no one, or several, is refused.
 */

/** Defaults of a tenant's OIDC sign-in (the admin may change each). */
export const OIDC_DEFAULTS = {
  scopes: ['openid', 'email', 'profile'],
  claim: 'email',
  attribute: 'email',
} as const;

/** Seconds a started sign-in stays usable (the person signs in at the provider meanwhile). */
export const OIDC_LIMITS = { flowSeconds: 600 } as const;

/** The cookie that binds a started sign-in to its browser (`Lax`: the provider's redirect carries it). */
export const OIDC_FLOW_COOKIE = 'tether_oidc_flow';

const CALLBACK_PATH = '/console/oidc/callback';
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** A sign-in refused: `reason` is safe to show and audit; `detail` is for the log only. */
export class OidcSignInRefused extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 502,
    readonly reason: string,
    readonly detail?: string,
  ) {
    super(reason);
    this.name = 'OidcSignInRefused';
  }
}

/** A tenant's OIDC sign-in, as the broker keeps it (the secret stays sealed). */
export interface OidcSettings {
  id: string;
  tenantId: string;
  issuer: string;
  clientId: string;
  scopes: string[];
  claim: string;
  attribute: string;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

function toSettings(row: ConsoleOidcConfigRow): OidcSettings {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    issuer: row.issuer,
    clientId: row.client_id,
    scopes: row.scopes.split(' '),
    claim: row.claim,
    attribute: row.attribute,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const sealBinding = (tenantId: string, configId: string) => ({ tenant: tenantId, oidc_config: configId });

/** The redirect URI to register with the provider, and where people start. */
export function oidcUrls(ctx: BrokerContext, tenantName: string): { redirectUri: string; signInUrl: string } {
  return {
    redirectUri: `${ctx.config.publicUrl}${CALLBACK_PATH}`,
    signInUrl: `${ctx.config.publicUrl}/console/oidc/${encodeURIComponent(tenantName)}/start`,
  };
}

async function findConfigRow(h: StoreHandle, tenantId: string) {
  return h.db
    .selectFrom('console_oidc_configs')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
}

/**
 * The issuer as given (openid-client compares it exactly with the provider's own), once the
 * outbound rules allow it; no query or fragment.
 */
function checkedIssuer(ctx: BrokerContext, issuer: string): string {
  assertDestination(ctx, 'issuer', issuer);
  if (new URL(issuer).search !== '') throw new TetherError('invalid_request', 'issuer may not carry a query');
  return issuer;
}

/**
 * An admin sets the tenant's OIDC sign-in (one per tenant). The client secret is sealed bound to
 * the tenant and config id; left out, the kept one stays. The audit record says whether the
 * secret changed, never what it is.
 */
export async function configureOidc(
  ctx: BrokerContext,
  caller: Caller,
  input: ConsoleOidcBody,
): Promise<OidcSettings> {
  requireRole(caller, 'admin');
  const issuer = checkedIssuer(ctx, input.issuer);
  const scopes = [...(input.scopes ?? OIDC_DEFAULTS.scopes)];
  if (!scopes.includes('openid')) throw new TetherError('invalid_request', 'scopes must include openid');
  const now = ctx.clock.now();
  return inTransaction(ctx.store, async (tx) => {
    const existing = await findConfigRow(tx, caller.tenant.id);
    const id = existing?.id ?? `oic_${randomBytes(16).toString('hex')}`;
    if (!existing && input.client_secret === undefined)
      throw new TetherError('invalid_request', 'client_secret is required the first time');
    const sealed =
      input.client_secret === undefined
        ? (existing?.sealed_client_secret as string)
        : await sealSecret(ctx.kek, input.client_secret, sealBinding(caller.tenant.id, id));
    const row: ConsoleOidcConfigRow = {
      id,
      tenant_id: caller.tenant.id,
      issuer,
      client_id: input.client_id,
      sealed_client_secret: sealed,
      scopes: scopes.join(' '),
      claim: input.claim ?? OIDC_DEFAULTS.claim,
      attribute: input.attribute ?? OIDC_DEFAULTS.attribute,
      created_by: existing?.created_by ?? caller.principal.id,
      created_at: existing?.created_at ?? now,
      updated_at: now,
    };
    if (existing)
      await tx.db
        .updateTable('console_oidc_configs')
        .set({ ...row, id: undefined, tenant_id: undefined })
        .where('id', '=', id)
        .execute();
    else await tx.db.insertInto('console_oidc_configs').values(row).execute();
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: existing ? 'console.oidc_updated' : 'console.oidc_configured',
      target: id,
      outcome: 'success',
      details: {
        issuer,
        client_id: row.client_id,
        scopes,
        claim: row.claim,
        attribute: row.attribute,
        client_secret_changed: input.client_secret !== undefined,
      },
    });
    return toSettings(row);
  });
}

/** The tenant's OIDC sign-in (admins and auditors), or not_found. */
export async function getOidc(ctx: BrokerContext, caller: Caller): Promise<OidcSettings> {
  requireRole(caller, 'admin', 'auditor');
  const row = await findConfigRow(ctx.store, caller.tenant.id);
  if (!row) throw new TetherError('not_found', 'this tenant has no OpenID Connect sign-in');
  return toSettings(row);
}

/**
 * An admin removes the tenant's OIDC sign-in: sign-ins under way fail at their callback, and the
 * console sessions it started end.
 */
export async function removeOidc(ctx: BrokerContext, caller: Caller): Promise<void> {
  requireRole(caller, 'admin');
  await inTransaction(ctx.store, async (tx) => {
    const row = await findConfigRow(tx, caller.tenant.id);
    if (!row) throw new TetherError('not_found', 'this tenant has no OpenID Connect sign-in');
    await tx.db.deleteFrom('console_oidc_flows').where('config_id', '=', row.id).execute();
    await tx.db.deleteFrom('console_oidc_configs').where('id', '=', row.id).execute();
    // The sign-ins it vouched for end with it (a provider removed may be one no longer trusted).
    await tx.db
      .updateTable('console_sessions')
      .set({ ended_at: ctx.clock.now(), end_reason: 'oidc_removed' })
      .where('passkey_id', '=', `oidc:${row.id}`)
      .where('ended_at', 'is', null)
      .execute();
    await recordAudit(tx, caller.tenant.id, ctx.clock.now(), {
      actor: caller.principal.id,
      action: 'console.oidc_removed',
      target: row.id,
      outcome: 'success',
      details: { issuer: row.issuer, client_id: row.client_id },
    });
  });
}

/** Whether `tenantName` names a tenant with OIDC sign-in; false alike for an unknown tenant. */
export async function oidcSignInAvailable(
  ctx: BrokerContext,
  tenantName: string | undefined,
): Promise<boolean> {
  if (!tenantName) return false;
  const tenant = await findTenantByName(ctx.store, tenantName);
  return tenant !== undefined && (await findConfigRow(ctx.store, tenant.id)) !== undefined;
}

/** Every call openid-client makes (discovery, JWKS, token endpoint) goes through the guarded outbound client. */
function guardedFetch(ctx: BrokerContext): oidc.CustomFetch {
  const outbound = outboundOf(ctx);
  return async (url, options) => {
    const method = options.method.toUpperCase();
    if (method !== 'GET' && method !== 'POST') throw new Unreachable(`method ${method} not used`);
    const body = options.body;
    const text =
      body === undefined || body === null
        ? undefined
        : typeof body === 'string'
          ? body
          : body instanceof URLSearchParams
            ? body.toString()
            : body instanceof Uint8Array || body instanceof ArrayBuffer
              ? Buffer.from(body as Uint8Array).toString('utf8')
              : undefined;
    const answer = await outbound.request(url, {
      method,
      headers: options.headers,
      ...(text === undefined ? {} : { body: text }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const headers = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
    }
    return new Response(answer.status === 204 || answer.status === 304 ? null : new Uint8Array(answer.body), {
      status: answer.status,
      headers,
    });
  };
}

/** The provider's client configuration: discovery through the guarded client, on the broker's clock. */
async function clientOf(ctx: BrokerContext, row: ConsoleOidcConfigRow): Promise<oidc.Configuration> {
  let secret: string;
  try {
    secret = await openSecret(ctx.kek, row.sealed_client_secret, sealBinding(row.tenant_id, row.id));
  } catch {
    throw new OidcSignInRefused(
      502,
      'company sign-in is misconfigured: ask an administrator',
      'sealed client secret does not open',
    );
  }
  const issuer = new URL(row.issuer);
  // The outbound client decides whether plain http may be used (only to hosts the operator allows).
  const insecure = issuer.protocol === 'http:' && outboundOf(ctx).refusalOf(row.issuer) === undefined;
  try {
    const config = await oidc.discovery(
      issuer,
      row.client_id,
      { [oidc.clockSkew]: Math.round((ctx.clock.now() - Date.now()) / 1000) },
      oidc.ClientSecretBasic(secret),
      {
        [oidc.customFetch]: guardedFetch(ctx),
        ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
      },
    );
    return config;
  } catch (err) {
    throw new OidcSignInRefused(502, 'the company sign-in provider could not be reached', causeOf(err));
  }
}

/** An outbound or openid-client failure, for the operator's log (never shown or audited). */
function causeOf(err: unknown): string {
  if (err instanceof Unreachable) return `unreachable: ${err.reason}`;
  const e = err as { name?: string; message?: string; code?: string; cause?: unknown };
  const cause = e.cause instanceof Unreachable ? ` (unreachable: ${e.cause.reason})` : '';
  return `${e.name ?? 'Error'}${e.code ? ` ${e.code}` : ''}: ${String(e.message ?? '').slice(0, 300)}${cause}`;
}

/**
 * Starts a sign-in for the tenant `tenantName`: the provider's authorization URL to redirect to,
 * and the cookie value that binds the flow to this browser.
 */
export async function startOidcSignIn(
  ctx: BrokerContext,
  tenantName: string,
): Promise<{ location: string; browserCookie: string }> {
  const tenant = await findTenantByName(ctx.store, tenantName);
  const row = tenant ? await findConfigRow(ctx.store, tenant.id) : undefined;
  if (!tenant || !row) throw new OidcSignInRefused(404, 'company sign-in is not set up for this tenant');
  const config = await clientOf(ctx, row);
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const verifier = oidc.randomPKCECodeVerifier();
  const browserCookie = randomBytes(32).toString('base64url');
  const now = ctx.clock.now();
  await ctx.store.db.deleteFrom('console_oidc_flows').where('expires_at', '<', now).execute();
  await ctx.store.db
    .insertInto('console_oidc_flows')
    .values({
      state_hash: sha256(state),
      tenant_id: tenant.id,
      config_id: row.id,
      browser_hash: sha256(browserCookie),
      code_verifier: verifier,
      nonce,
      expires_at: now + OIDC_LIMITS.flowSeconds * 1000,
    })
    .execute();
  const location = oidc.buildAuthorizationUrl(config, {
    redirect_uri: oidcUrls(ctx, tenant.name).redirectUri,
    scope: row.scopes,
    state,
    nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  return { location: location.href, browserCookie };
}

/** The human principals whose attribute equals a verified claim's value (the caller wants exactly one, enabled). */
async function principalFor(
  h: StoreHandle,
  tenantId: string,
  attribute: string,
  value: string,
): Promise<Principal[]> {
  const rows = await h.db
    .selectFrom('principals')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('kind', '=', 'human')
    .execute();
  return rows.map(toPrincipal).filter((p) => p.attributes[attribute] === value);
}

/**
 * Completes a sign-in at the provider's redirect: takes the flow its `state` names (once), checks
 * that this browser started it, exchanges the code (openid-client verifies the ID token), maps the
 * claim to a principal and starts a console session. Every refusal where the tenant is known is
 * audited (`auth.console_signed_in`, `method: oidc`).
 */
export async function completeOidcSignIn(
  ctx: BrokerContext,
  callback: { query: string; browserCookie: string | undefined },
): Promise<{ cookie: string; csrf: string; principal: string }> {
  const params = new URLSearchParams(callback.query);
  const state = params.get('state') ?? '';
  const now = ctx.clock.now();
  const flow = await inTransaction(ctx.store, async (tx) => {
    const found = await tx.db
      .selectFrom('console_oidc_flows')
      .selectAll()
      .where('state_hash', '=', sha256(state))
      .executeTakeFirst();
    if (found)
      await tx.db.deleteFrom('console_oidc_flows').where('state_hash', '=', found.state_hash).execute();
    return found;
  });
  if (!flow || now >= flow.expires_at)
    throw new OidcSignInRefused(400, 'this sign-in is not valid (used, expired or unknown): start again');
  const refuse = async (
    status: 400 | 401 | 502,
    reason: string,
    who: { actor?: string; principalId?: string } = {},
    detail?: string,
  ) => {
    await recordRefusal(ctx, flow.tenant_id, {
      actor: who.actor ?? 'anonymous',
      action: 'auth.console_signed_in',
      target: who.principalId ?? flow.config_id,
      principalId: who.principalId ?? null,
      details: { method: 'oidc', reason },
    });
    return new OidcSignInRefused(status, reason, detail);
  };
  if (!callback.browserCookie || sha256(callback.browserCookie) !== flow.browser_hash)
    throw await refuse(400, 'this sign-in was started in another browser: start again');
  const row = await ctx.store.db
    .selectFrom('console_oidc_configs')
    .selectAll()
    .where('id', '=', flow.config_id)
    .executeTakeFirst();
  const tenant = await findTenantById(ctx.store, flow.tenant_id);
  if (!row || !tenant) throw await refuse(400, 'company sign-in is no longer set up for this tenant');
  const providerError = params.get('error');
  if (providerError !== null)
    throw await refuse(
      401,
      `the provider refused the sign-in (${providerError.slice(0, 64).replace(/[^\w.-]/g, '_')})`,
    );
  let config: oidc.Configuration;
  try {
    config = await clientOf(ctx, row);
  } catch (err) {
    const e = err as OidcSignInRefused;
    throw await refuse(502, e.reason, {}, e.detail);
  }
  let claims: oidc.IDToken | undefined;
  try {
    const tokens = await oidc.authorizationCodeGrant(
      config,
      new URL(`${oidcUrls(ctx, tenant.name).redirectUri}?${params.toString()}`),
      {
        pkceCodeVerifier: flow.code_verifier,
        expectedState: state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      },
    );
    claims = tokens.claims();
  } catch (err) {
    throw await refuse(401, 'the provider’s answer could not be verified', {}, causeOf(err));
  }
  if (!claims) throw await refuse(401, 'the provider sent no ID token');
  const subject = `oidc:${String(claims.sub).slice(0, 256)}`;
  const value = claims[row.claim];
  if (typeof value !== 'string' || value === '')
    throw await refuse(401, `the ID token has no ${row.claim} claim`, { actor: subject });
  // An unverified address names nobody: anyone may type one in at some providers.
  if (row.claim === 'email' && (claims.email_verified === false || claims.email_verified === 'false'))
    throw await refuse(401, 'the provider has not verified this email address', { actor: subject });
  const matches = await principalFor(ctx.store, tenant.id, row.attribute, value);
  if (matches.length === 0)
    throw await refuse(401, 'no person here matches this company account', { actor: subject });
  if (matches.length > 1)
    throw await refuse(401, 'several people here match this company account: ask an administrator', {
      actor: subject,
    });
  const principal = matches[0] as Principal;
  if (!principal.enabled)
    throw await refuse(401, 'this person is disabled', { actor: principal.id, principalId: principal.id });
  return inTransaction(ctx.store, async (tx) => {
    const at = ctx.clock.now();
    const session = await startConsoleSession(tx, {
      tenantId: tenant.id,
      principalId: principal.id,
      passkeyId: `oidc:${row.id}`,
      now: at,
    });
    await recordAudit(tx, tenant.id, at, {
      actor: principal.id,
      action: 'auth.console_signed_in',
      target: principal.id,
      outcome: 'success',
      principalId: principal.id,
      details: { method: 'oidc', issuer: row.issuer, subject, expires_at: session.expiresAt },
    });
    return { cookie: session.cookie, csrf: session.csrf, principal: principal.name };
  });
}
