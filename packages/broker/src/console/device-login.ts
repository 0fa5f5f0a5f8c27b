import { createHash, randomBytes, randomInt } from 'node:crypto';
import { DpopError } from '@tether-broker/pep';
import { TetherError } from '@tether-broker/protocol';
import { recordAudit } from '../audit/record.js';
import { issueApiToken } from '../auth/api-token.js';
import { LOGIN_KID_PREFIX } from '../auth/login-token.js';
import { OAuthError } from '../auth/oauth-error.js';
import { verifyBrokerProof } from '../core/broker-dpop.js';
import type { BrokerContext, Caller } from '../core/context.js';
import { newId } from '../domain/ids.js';
import { inTransaction } from '../store/database.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findTenantByName } from '../store/repositories/tenants.js';

/**
 * `tether login`: the OAuth 2.0 Device Authorization Grant (RFC 8628) for people at a terminal.
 * The CLI asks for a code with a DPoP proof by a key it just made (RFC 9449 §5: the token will
 * be bound to it), shows the person a short user code and the console's `/console/device`
 * page; signed in there (passkey or OIDC), the person confirms the code; the CLI, polling the
 * token endpoint with the device code and a proof by the same key, receives a broker-API token
 * for that person, bound to its key. No key file is made or registered. The token names its
 * login (`login:<id>`): `tether logout` ends the login, and the token stops working at once,
 * as it does when the person is disabled.
 */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
export const DEVICE_LOGIN_LIMITS = { expiresInSeconds: 600, intervalSeconds: 5, tokenSeconds: 8 * 3600 };

// RFC 8628 §6.1: consonants only (no vowels: no words), case-insensitive, with a separator.
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

function newUserCode(): string {
  const pick = () => USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
  const half = () => Array.from({ length: 4 }, pick).join('');
  return `${half()}-${half()}`;
}

/** A user code as typed: upper case, separators and spaces ignored. */
export function normalizeUserCode(typed: string): string {
  const letters = typed.toUpperCase().replace(/[^A-Z]/g, '');
  return letters.length === 8 ? `${letters.slice(0, 4)}-${letters.slice(4)}` : '';
}

async function proofKey(ctx: BrokerContext, header: string | string[] | undefined, path: string) {
  try {
    return (await verifyBrokerProof(ctx, header, { method: 'POST', path })).jkt;
  } catch (err) {
    if (err instanceof DpopError) throw new OAuthError(err.code, err.message);
    throw err;
  }
}

/** `POST /oauth/device_authorization` (RFC 8628 §3.1–3.2), for the tenant the form names. */
export async function startDeviceLogin(
  ctx: BrokerContext,
  form: { tenant?: string | undefined },
  dpop: string | string[] | undefined,
) {
  if (!form.tenant) throw new OAuthError('invalid_request', 'tenant is required: the tenant to sign in to');
  const jkt = await proofKey(ctx, dpop, '/oauth/device_authorization');
  const tenant = await findTenantByName(ctx.store, form.tenant);
  // The same answer for an unknown tenant: nothing here tells which tenants exist.
  const deviceCode = randomBytes(32).toString('base64url');
  const userCode = newUserCode();
  const now = ctx.clock.now();
  if (tenant) {
    await ctx.store.db
      .deleteFrom('device_logins')
      .where('expires_at', '<', now - 86_400_000)
      .where('state', 'in', ['pending', 'approved', 'denied'])
      .execute();
    await ctx.store.db
      .insertInto('device_logins')
      .values({
        id: newId('deviceLogin'),
        device_code_hash: sha256(deviceCode),
        user_code: userCode,
        tenant_id: tenant.id,
        jkt,
        state: 'pending',
        principal_id: null,
        created_at: now,
        expires_at: now + DEVICE_LOGIN_LIMITS.expiresInSeconds * 1000,
        last_poll_at: null,
        token_expires_at: null,
      })
      .execute();
  }
  const page = `${ctx.config.publicUrl}/console/device`;
  return {
    device_code: deviceCode,
    user_code: userCode,
    verification_uri: page,
    verification_uri_complete: `${page}?code=${userCode}`,
    expires_in: DEVICE_LOGIN_LIMITS.expiresInSeconds,
    interval: DEVICE_LOGIN_LIMITS.intervalSeconds,
  };
}

/** The signed-in person confirms (or refuses) a code: only a pending, unexpired one of their tenant. */
export async function confirmDeviceLogin(
  ctx: BrokerContext,
  caller: Caller,
  typed: string,
  allow: boolean,
): Promise<{ state: 'approved' | 'denied' }> {
  const userCode = normalizeUserCode(typed);
  return inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    const row = userCode
      ? await tx.db
          .selectFrom('device_logins')
          .selectAll()
          .where('user_code', '=', userCode)
          .executeTakeFirst()
      : undefined;
    if (!row || row.tenant_id !== caller.tenant.id || row.state !== 'pending' || now >= row.expires_at)
      throw new TetherError(
        'not_found',
        'no sign-in waits for this code: check it, or run tether login again',
      );
    const state = allow ? 'approved' : 'denied';
    await tx.db
      .updateTable('device_logins')
      .set({ state, principal_id: caller.principal.id })
      .where('id', '=', row.id)
      .where('state', '=', 'pending')
      .execute();
    await recordAudit(tx, caller.tenant.id, now, {
      actor: caller.principal.id,
      action: allow ? 'auth.cli_login_approved' : 'auth.cli_login_denied',
      target: caller.principal.id,
      outcome: 'success',
      principalId: caller.principal.id,
      details: { login: row.id, jkt: row.jkt },
    });
    return { state };
  });
}

/**
 * `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4–3.5), with a proof
 * by the key that asked for the code: `authorization_pending` until the person confirms,
 * `slow_down` when asked faster than the interval, `access_denied`, `expired_token`; once, the
 * token.
 */
export async function exchangeDeviceCode(
  ctx: BrokerContext,
  form: { device_code?: string | undefined },
  dpop: string | string[] | undefined,
) {
  if (!form.device_code) throw new OAuthError('invalid_request', 'device_code is required');
  const jkt = await proofKey(ctx, dpop, '/oauth/token');
  const outcome = await inTransaction(ctx.store, async (tx) => {
    const now = ctx.clock.now();
    const row = await tx.db
      .selectFrom('device_logins')
      .selectAll()
      .where('device_code_hash', '=', sha256(form.device_code as string))
      .executeTakeFirst();
    if (!row || row.jkt !== jkt)
      return { error: new OAuthError('invalid_grant', 'unknown device code, or not for this key') };
    if (row.state === 'used' || row.state === 'ended')
      return { error: new OAuthError('invalid_grant', 'this device code has been used') };
    if (now >= row.expires_at)
      return { error: new OAuthError('expired_token', 'the code expired: run tether login again') };
    if (row.state === 'denied')
      return { error: new OAuthError('access_denied', 'the sign-in was refused in the console') };
    const tooSoon =
      row.last_poll_at !== null &&
      now - Number(row.last_poll_at) < DEVICE_LOGIN_LIMITS.intervalSeconds * 1000;
    await tx.db.updateTable('device_logins').set({ last_poll_at: now }).where('id', '=', row.id).execute();
    if (row.state === 'pending')
      return {
        error: tooSoon
          ? new OAuthError('slow_down', `ask at most every ${DEVICE_LOGIN_LIMITS.intervalSeconds} s`)
          : new OAuthError(
              'authorization_pending',
              'waiting for the person to confirm the code in the console',
            ),
      };
    const principal = row.principal_id ? await findPrincipal(tx, row.tenant_id, row.principal_id) : undefined;
    if (!principal?.enabled) return { error: new OAuthError('access_denied', 'the person is disabled') };
    const tokenExpiresAt = now + DEVICE_LOGIN_LIMITS.tokenSeconds * 1000;
    await tx.db
      .updateTable('device_logins')
      .set({ state: 'used', token_expires_at: tokenExpiresAt })
      .where('id', '=', row.id)
      .where('state', '=', 'approved')
      .execute();
    await recordAudit(tx, row.tenant_id, now, {
      actor: principal.id,
      action: 'auth.token_issued',
      target: principal.id,
      outcome: 'success',
      principalId: principal.id,
      details: { grant: 'device_code', login: row.id, jkt, expires_in: DEVICE_LOGIN_LIMITS.tokenSeconds },
    });
    return { principal, login: row.id, now };
  });
  if ('error' in outcome) throw outcome.error;
  const { token, expiresIn } = await issueApiToken(ctx.keys, outcome.principal, {
    issuer: ctx.config.publicUrl,
    ttlSeconds: DEVICE_LOGIN_LIMITS.tokenSeconds,
    now: outcome.now,
    jkt,
    clientKid: `${LOGIN_KID_PREFIX}${outcome.login}`,
  });
  return { access_token: token, token_type: 'DPoP' as const, expires_in: expiresIn, scope: 'tether:api' };
}

/** `tether logout`: the login behind the caller's token ends; the token stops working at once. */
export async function endLogin(ctx: BrokerContext, caller: Caller): Promise<void> {
  const id = caller.loginId;
  if (id === undefined)
    throw new TetherError(
      'invalid_request',
      'this token was not obtained by tether login; there is no login to end',
    );
  await inTransaction(ctx.store, async (tx) => {
    await tx.db
      .updateTable('device_logins')
      .set({ state: 'ended' })
      .where('id', '=', id)
      .where('principal_id', '=', caller.principal.id)
      .execute();
    await recordAudit(tx, caller.tenant.id, ctx.clock.now(), {
      actor: caller.principal.id,
      action: 'auth.cli_logout',
      target: caller.principal.id,
      outcome: 'success',
      principalId: caller.principal.id,
      details: { login: id },
    });
  });
}
