import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { TetherError } from '@tether-broker/protocol';
import type { BrokerContext, Caller } from '../core/context.js';
import type { TxHandle } from '../store/database.js';
import { findPrincipal } from '../store/repositories/principals.js';
import { findTenantById } from '../store/repositories/tenants.js';

/**
 * Console sessions: a person signed in to the console with a passkey holds a short-lived
 * session bound to the browser by a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS).
 * The cookie authenticates the same `/v1` API the CLI uses, under the same roles and policy;
 * a call that changes anything must also carry the session's CSRF token in `X-Tether-CSRF`
 * (a cross-site page can neither send the cookie nor set the header). Only hashes of the
 * cookie and the token are stored. The session ends at sign-out, after
 * `consoleIdleSeconds` without a call, at `consoleSessionSeconds`, and at once when its
 * principal is disabled (read live on every call).
 */
export const CONSOLE_COOKIE = 'tether_console';
export const CSRF_HEADER = 'x-tether-csrf';

/** Seconds: idle and hard limits of a console session. */
export const CONSOLE_SESSION_LIMITS = { idleSeconds: 15 * 60, hardSeconds: 8 * 3600 } as const;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Idle time is recorded at most this often per session: a page's burst of calls writes once. */
const SEEN_EVERY_MS = 30_000;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** The console cookie's value in a `Cookie` header, if any (bounded: a cookie header is small). */
export function consoleCookieOf(header: string | undefined): string | undefined {
  if (!header || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === CONSOLE_COOKIE) return value.join('=') || undefined;
  }
  return undefined;
}

/** The `Set-Cookie` value for a new session, or to clear it (`value` undefined). */
export function consoleCookieHeader(publicUrl: string, value: string | undefined): string {
  const secure = publicUrl.startsWith('https:') ? '; Secure' : '';
  return value === undefined
    ? `${CONSOLE_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure}`
    : `${CONSOLE_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${CONSOLE_SESSION_LIMITS.hardSeconds}${secure}`;
}

/**
 * The CSRF token of a console session, derived from its cookie: the page reads it from
 * `GET /console/api/me` (same origin only) and sends it back in the header; a cross-site page
 * has neither the cookie (HttpOnly, SameSite=Strict) nor a way to read the answer.
 */
export function csrfTokenOf(cookie: string): string {
  return createHash('sha256').update(`tether-console-csrf:${cookie}`, 'utf8').digest('base64url');
}

/** Starts a console session inside the sign-in's transaction: the cookie value and CSRF token, answered once. */
export async function startConsoleSession(
  tx: TxHandle,
  start: { tenantId: string; principalId: string; passkeyId: string; now: number },
): Promise<{ cookie: string; csrf: string; expiresAt: number }> {
  const cookie = randomBytes(32).toString('base64url');
  const csrf = csrfTokenOf(cookie);
  const expiresAt = start.now + CONSOLE_SESSION_LIMITS.hardSeconds * 1000;
  await tx.db
    .insertInto('console_sessions')
    .values({
      id_hash: sha256(cookie),
      tenant_id: start.tenantId,
      principal_id: start.principalId,
      csrf_hash: sha256(csrf),
      passkey_id: start.passkeyId,
      created_at: start.now,
      last_seen_at: start.now,
      expires_at: expiresAt,
      ended_at: null,
      end_reason: null,
      // An OIDC sign-in is the provider's verification, not a passkey's.
      verified_at: start.passkeyId.startsWith('oidc:') ? null : start.now,
    })
    .execute();
  return { cookie, csrf, expiresAt };
}

/** A live console session's row for `cookie`, or a refusal. */
async function liveSession(ctx: BrokerContext, cookie: string) {
  const now = ctx.clock.now();
  const row = await ctx.store.db
    .selectFrom('console_sessions')
    .selectAll()
    .where('id_hash', '=', sha256(cookie))
    .executeTakeFirst();
  if (!row || row.ended_at !== null)
    throw new TetherError('unauthenticated', 'the console session has ended: sign in again');
  if (now >= row.expires_at || now >= row.last_seen_at + CONSOLE_SESSION_LIMITS.idleSeconds * 1000) {
    await endRow(ctx, row.id_hash, now >= row.expires_at ? 'expired' : 'idle');
    throw new TetherError('unauthenticated', 'the console session has ended: sign in again');
  }
  return { row, now };
}

/**
 * The caller a console cookie stands for. A call that is not a safe method must carry the
 * session's CSRF token; the principal must still be enabled (a disabled one's session ends).
 */
export async function authenticateConsoleSession(
  ctx: BrokerContext,
  presented: { cookie: string; csrf: string | string[] | undefined; method: string },
): Promise<Caller> {
  const { row, now } = await liveSession(ctx, presented.cookie);
  if (!SAFE_METHODS.has(presented.method.toUpperCase())) {
    const csrf = typeof presented.csrf === 'string' ? presented.csrf : '';
    if (!sameSecret(sha256(csrf), row.csrf_hash))
      throw new TetherError(
        'forbidden',
        `a console call that changes something needs the ${CSRF_HEADER} header`,
      );
  }
  const principal = await findPrincipal(ctx.store, row.tenant_id, row.principal_id);
  const tenant = await findTenantById(ctx.store, row.tenant_id);
  if (!principal || !tenant || !principal.enabled) {
    await endRow(ctx, row.id_hash, 'principal_disabled');
    throw new TetherError('unauthenticated', 'the console session has ended: its principal is disabled');
  }
  if (now - row.last_seen_at >= SEEN_EVERY_MS)
    await ctx.store.db
      .updateTable('console_sessions')
      .set({ last_seen_at: now })
      .where('id_hash', '=', row.id_hash)
      .execute();
  return { principal, tenant, ...(row.verified_at === null ? {} : { verifiedAt: Number(row.verified_at) }) };
}

/** Records a fresh passkey verification in the console session `cookie` stands for. */
export async function markVerified(ctx: BrokerContext, cookie: string, at: number): Promise<void> {
  await ctx.store.db
    .updateTable('console_sessions')
    .set({ verified_at: at })
    .where('id_hash', '=', sha256(cookie))
    .where('ended_at', 'is', null)
    .execute();
}

/** The CSRF token check, once the caller proved the cookie: answers whether `csrf` is the session's. */
function sameSecret(presentedHash: string, storedHash: string): boolean {
  const a = Buffer.from(presentedHash, 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Signs the browser out: the session ends (`signed_out`); its cookie opens nothing again. */
export async function endConsoleSession(ctx: BrokerContext, cookie: string): Promise<void> {
  await endRow(ctx, sha256(cookie), 'signed_out');
}

/** Ends every live console session of a principal (its passkeys changed, it was disabled…). */
export async function endConsoleSessionsOf(tx: TxHandle, principalId: string, at: number, reason: string) {
  await tx.db
    .updateTable('console_sessions')
    .set({ ended_at: at, end_reason: reason })
    .where('principal_id', '=', principalId)
    .where('ended_at', 'is', null)
    .execute();
}

async function endRow(ctx: BrokerContext, idHash: string, reason: string): Promise<void> {
  await ctx.store.db
    .updateTable('console_sessions')
    .set({ ended_at: ctx.clock.now(), end_reason: reason })
    .where('id_hash', '=', idHash)
    .where('ended_at', 'is', null)
    .execute();
}
