import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { TetherError } from '@tether-broker/protocol';
import {
  ConsoleOidcBody,
  ConsoleOidcView,
  Deleted,
  SignInMethods,
  SignInMethodsQuery,
  Strict,
} from '@tether-broker/protocol/api';
import type { FastifyReply } from 'fastify';
import { consoleCookieHeader } from '../../auth/console-session.js';
import {
  completeOidcSignIn,
  configureOidc,
  getOidc,
  OIDC_FLOW_COOKIE,
  OIDC_LIMITS,
  type OidcSettings,
  OidcSignInRefused,
  oidcSignInAvailable,
  oidcUrls,
  removeOidc,
  startOidcSignIn,
} from '../../console/oidc.js';
import { oidcSignInFailedPage } from '../../console/oidc-pages.js';
import { CONSOLE_HEADERS } from '../../console/pages.js';
import type { BrokerContext } from '../../core/context.js';
import { withProblems } from '../schemas/common.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** The tenant's OIDC sign-in as answered: never its client secret. */
function oidcView(ctx: BrokerContext, tenantName: string, s: OidcSettings): ConsoleOidcView {
  const urls = oidcUrls(ctx, tenantName);
  return {
    id: s.id,
    issuer: s.issuer,
    client_id: s.clientId,
    scopes: s.scopes,
    claim: s.claim,
    attribute: s.attribute,
    redirect_uri: urls.redirectUri,
    sign_in_url: urls.signInUrl,
    created_by: s.createdBy,
    created_at: iso(s.createdAt),
    updated_at: iso(s.updatedAt),
  };
}

/** The flow cookie: `Lax` so the provider's top-level redirect back carries it; only under /console/oidc. */
function flowCookieHeader(publicUrl: string, value: string | undefined): string {
  const secure = publicUrl.startsWith('https:') ? '; Secure' : '';
  const life = value === undefined ? 0 : OIDC_LIMITS.flowSeconds;
  return `${OIDC_FLOW_COOKIE}=${value ?? ''}; Path=/console/oidc; HttpOnly; SameSite=Lax; Max-Age=${life}${secure}`;
}

function flowCookieOf(header: string | undefined): string | undefined {
  if (!header || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === OIDC_FLOW_COOKIE) return value.join('=') || undefined;
  }
  return undefined;
}

/**
 * A refused sign-in as a page, never a 500: the reason shown is safe; the cause goes to the log.
 * Anything unexpected reads as a temporary failure.
 */
function refusedPage(ctx: BrokerContext, reply: FastifyReply, err: unknown) {
  const refused =
    err instanceof OidcSignInRefused
      ? err
      : new OidcSignInRefused(502, 'company sign-in failed: try again later', (err as Error)?.message);
  ctx.logger.warn({ reason: refused.reason, detail: refused.detail }, 'console OIDC sign-in refused');
  return reply
    .code(refused.status)
    .headers(CONSOLE_HEADERS)
    .header('set-cookie', flowCookieHeader(ctx.config.publicUrl, undefined))
    .type('text/html; charset=utf-8')
    .send(oidcSignInFailedPage(refused.reason));
}

/**
 * Console sign-in with the tenant's company OpenID Connect provider (public, rate-limited as the
 * console's other public routes): start, the provider's redirect back, and whether a tenant has it.
 */
export function consoleOidcRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/console/api/sign-in-methods',
      {
        schema: {
          tags: ['console'],
          summary: 'How people of a tenant may sign in (the same answer shape for any name)',
          querystring: SignInMethodsQuery,
          response: withProblems({ 200: SignInMethods }),
        },
      },
      async (request) => ({ oidc: await oidcSignInAvailable(ctx, request.query.tenant) }),
    );
    app.get(
      '/console/oidc/:tenant/start',
      {
        schema: {
          hide: true,
          params: Type.Object({ tenant: Type.String({ minLength: 1, maxLength: 128 }) }),
        },
      },
      async (request, reply) => {
        try {
          const started = await startOidcSignIn(ctx, request.params.tenant);
          return reply
            .code(302)
            .header('cache-control', 'no-store')
            .header('referrer-policy', 'no-referrer')
            .header('set-cookie', flowCookieHeader(ctx.config.publicUrl, started.browserCookie))
            .header('location', started.location)
            .send();
        } catch (err) {
          return refusedPage(ctx, reply, err);
        }
      },
    );
    // The provider's answer (RFC 6749 4.1.2, RFC 9207 `iss`), with the extra keys common
    // providers add (`session_state`; Google's `scope`, `authuser`, `hd`, `prompt`); any other
    // key is refused like everywhere else. openid-client checks the answer in depth.
    const Value = (maxLength: number) => Type.Optional(Type.String({ maxLength }));
    const CallbackQuery = Type.Object(
      {
        code: Value(2048),
        state: Value(512),
        iss: Value(2048),
        error: Value(256),
        error_description: Value(1024),
        error_uri: Value(2048),
        session_state: Value(512),
        scope: Value(2048),
        authuser: Value(16),
        hd: Value(256),
        prompt: Value(64),
      },
      Strict,
    );
    app.get(
      '/console/oidc/callback',
      {
        schema: {
          tags: ['console'],
          summary:
            'The company provider’s redirect back: starts a console session (cookie) and goes to /console; a refusal is an HTML page',
          querystring: CallbackQuery,
          response: withProblems({
            302: Type.String({ maxLength: 0, description: 'signed in: to /console' }),
          }),
        },
      },
      async (request, reply) => {
        try {
          const query = request.raw.url?.split('?')[1] ?? '';
          if (query.length > 8192) throw new OidcSignInRefused(400, 'this sign-in answer is too large');
          const signedIn = await completeOidcSignIn(ctx, {
            query,
            browserCookie: flowCookieOf(request.headers.cookie),
          });
          return reply
            .code(302)
            .header('cache-control', 'no-store')
            .header('referrer-policy', 'no-referrer')
            .header('set-cookie', [
              consoleCookieHeader(ctx.config.publicUrl, signedIn.cookie),
              flowCookieHeader(ctx.config.publicUrl, undefined),
            ])
            .header('location', '/console')
            .type('text/plain; charset=utf-8')
            .send('');
        } catch (err) {
          if (err instanceof TetherError)
            return refusedPage(ctx, reply, new OidcSignInRefused(400, err.message));
          return refusedPage(ctx, reply, err);
        }
      },
    );
  };
}

/** `/v1/console/oidc`: the tenant's company sign-in. Admins set and remove it; auditors may read. */
export function consoleOidcAdminRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['console'];
    app.get(
      '/console/oidc',
      { schema: { tags, response: withProblems({ 200: ConsoleOidcView }) } },
      async (request) => oidcView(ctx, request.caller.tenant.name, await getOidc(ctx, request.caller)),
    );
    app.put(
      '/console/oidc',
      {
        schema: {
          tags,
          summary: 'Set the tenant’s OpenID Connect provider for console sign-in (admin)',
          body: ConsoleOidcBody,
          response: withProblems({ 200: ConsoleOidcView }),
        },
      },
      async (request, reply) => {
        const settings = await configureOidc(ctx, request.caller, request.body);
        reply.header('cache-control', 'no-store');
        return oidcView(ctx, request.caller.tenant.name, settings);
      },
    );
    app.delete(
      '/console/oidc',
      { schema: { tags, response: withProblems({ 200: Deleted }) } },
      async (request) => {
        await removeOidc(ctx, request.caller);
        return { deleted: true };
      },
    );
  };
}
