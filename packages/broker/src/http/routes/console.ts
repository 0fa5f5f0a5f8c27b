import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PROBLEM_MEDIA_TYPE, TetherError } from '@tether-broker/protocol';
import { Strict } from '@tether-broker/protocol/api';
import {
  authenticateConsoleSession,
  CSRF_HEADER,
  consoleCookieHeader,
  consoleCookieOf,
  csrfTokenOf,
  endConsoleSession,
} from '../../auth/console-session.js';
import { confirmDeviceLogin, endLogin } from '../../console/device-login.js';
import {
  CONSOLE_CSS,
  CONSOLE_HEADERS,
  CONSOLE_SCRIPT_PATH,
  DEVICE_PAGE,
  ENROL_PAGE,
  HOME_PAGE,
  readConsoleScript,
} from '../../console/pages.js';
import {
  completeEnrolment,
  completeSignIn,
  enrolmentOptions,
  invitePrincipal,
  signInOptions,
} from '../../console/passkeys.js';
import { completeVerification, verificationOptions } from '../../console/verification.js';
import type { BrokerContext } from '../../core/context.js';
import { EmptyObject, withProblems } from '../schemas/common.js';

/** The answer for the console's script when it was not built (no catalogue code: no API refused anything). */
const NOT_BUILT = {
  type: 'about:blank',
  title: 'Service Unavailable',
  status: 503,
  detail: 'the console script is not built on this broker (npm run build makes it)',
};

/** A WebAuthn response as the browser's `toJSON()` gives it: checked in depth by the WebAuthn library. */
const CredentialJson = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 1024 }),
    rawId: Type.String({ maxLength: 1024 }),
    type: Type.Literal('public-key'),
    response: Type.Object({}, { additionalProperties: true }),
    clientExtensionResults: Type.Optional(Type.Object({}, { additionalProperties: true })),
    authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
  },
  { additionalProperties: true },
);
const Invitation = Type.String({ minLength: 1, maxLength: 128 });
const AnyJson = Type.Object({}, { additionalProperties: true });

/**
 * The console: its pages, the passkey ceremonies and sign-out (public, rate-limited as the
 * public routes are; the ceremonies prove who signs in). Everything else the console does goes
 * through `/v1` with the console cookie.
 */
export function consoleRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    const hide = { hide: true } as const;
    const serve = (body: string, type: string) => async (_: unknown, reply: import('fastify').FastifyReply) =>
      reply.headers(CONSOLE_HEADERS).type(type).send(body);
    // `?tenant=<name>` offers that tenant's company sign-in, if it has one (read by the page's script).
    const homeQuery = Type.Object({ tenant: Type.Optional(Type.String({ maxLength: 128 })) }, Strict);
    app.get(
      '/console',
      { schema: { hide: true, querystring: homeQuery } },
      serve(HOME_PAGE, 'text/html; charset=utf-8'),
    );
    app.get('/console/enrol', { schema: hide }, serve(ENROL_PAGE, 'text/html; charset=utf-8'));
    app.get(
      '/console/device',
      {
        schema: {
          ...hide,
          querystring: Type.Object(
            { code: Type.Optional(Type.String({ maxLength: 32 })) },
            { additionalProperties: false },
          ),
        },
      },
      serve(DEVICE_PAGE, 'text/html; charset=utf-8'),
    );
    // The bundled app, read once. Without it (not built) the broker still serves its API and
    // the console says why it cannot run.
    const script = readConsoleScript();
    if (script === undefined)
      ctx.logger.warn(
        { path: CONSOLE_SCRIPT_PATH },
        'the console script is not built (npm run build): /console answers 503 for it',
      );
    app.get(
      '/console/console.js',
      { schema: hide },
      script === undefined
        ? async (_, reply) =>
            reply.headers(CONSOLE_HEADERS).code(503).type(PROBLEM_MEDIA_TYPE).send(NOT_BUILT)
        : serve(script, 'text/javascript; charset=utf-8'),
    );
    app.get('/console/console.css', { schema: hide }, serve(CONSOLE_CSS, 'text/css; charset=utf-8'));

    const tags = ['console'];
    app.post(
      '/console/api/enrol/options',
      {
        schema: {
          tags,
          summary: 'Passkey creation options for an enrolment link',
          body: Type.Object({ invitation: Invitation }),
          response: withProblems({ 200: AnyJson }),
        },
      },
      async (request) => enrolmentOptions(ctx, request.body.invitation),
    );
    app.post(
      '/console/api/enrol/verify',
      {
        schema: {
          tags,
          summary: 'Keep the passkey made from an enrolment link',
          body: Type.Object({ invitation: Invitation, credential: CredentialJson }),
          response: withProblems({ 200: Type.Object({ enrolled: Type.Boolean() }) }),
        },
      },
      async (request) => {
        // biome-ignore lint/suspicious/noExplicitAny: the WebAuthn library checks the response in depth
        await completeEnrolment(ctx, request.body.invitation, request.body.credential as any);
        return { enrolled: true };
      },
    );
    app.post(
      '/console/api/sign-in/options',
      {
        schema: {
          tags,
          summary: 'Passkey request options to sign in',
          body: EmptyObject,
          response: withProblems({ 200: AnyJson }),
        },
      },
      async () => signInOptions(ctx),
    );
    app.post(
      '/console/api/sign-in/verify',
      {
        schema: {
          tags,
          summary: 'Sign in with a passkey: starts a console session (cookie)',
          body: Type.Object({ credential: CredentialJson }),
          response: withProblems({ 200: Type.Object({ principal: Type.String(), csrf: Type.String() }) }),
        },
      },
      async (request, reply) => {
        // biome-ignore lint/suspicious/noExplicitAny: the WebAuthn library checks the response in depth
        const signedIn = await completeSignIn(ctx, request.body.credential as any);
        reply.header('set-cookie', consoleCookieHeader(ctx.config.publicUrl, signedIn.cookie));
        reply.header('cache-control', 'no-store');
        return { principal: signedIn.principal, csrf: signedIn.csrf };
      },
    );
    app.post(
      '/console/api/verify/options',
      {
        schema: {
          tags,
          summary: 'Passkey request options to verify yourself again (signed in)',
          body: EmptyObject,
          response: withProblems({ 200: AnyJson }),
        },
      },
      async (request) => verificationOptions(ctx, await consoleCaller(ctx, request)),
    );
    app.post(
      '/console/api/verify/verify',
      {
        schema: {
          tags,
          summary: 'Verify yourself again with one of your passkeys',
          body: Type.Object({ credential: CredentialJson }),
          response: withProblems({ 200: Type.Object({ verified_at: Type.String() }) }),
        },
      },
      async (request) => {
        const caller = await consoleCaller(ctx, request);
        const cookie = consoleCookieOf(request.headers.cookie) as string;
        // biome-ignore lint/suspicious/noExplicitAny: the WebAuthn library checks the response in depth
        const done = await completeVerification(ctx, caller, cookie, request.body.credential as any);
        return { verified_at: new Date(done.verifiedAt).toISOString() };
      },
    );
    app.post(
      '/console/api/device',
      {
        schema: {
          tags,
          summary: 'Confirm (or refuse) the code tether login shows',
          body: Type.Object({
            user_code: Type.String({ minLength: 1, maxLength: 32 }),
            allow: Type.Boolean(),
          }),
          response: withProblems({ 200: Type.Object({ state: Type.String() }) }),
        },
      },
      async (request) =>
        confirmDeviceLogin(
          ctx,
          await consoleCaller(ctx, request),
          request.body.user_code,
          request.body.allow,
        ),
    );
    app.get(
      '/console/api/me',
      {
        schema: {
          tags,
          summary: 'Who the console session is, with its CSRF token',
          response: withProblems({
            200: Type.Object({
              principal: Type.Object({
                id: Type.String(),
                name: Type.String(),
                roles: Type.Array(Type.String()),
              }),
              tenant: Type.String(),
              csrf: Type.String(),
            }),
          }),
        },
      },
      async (request, reply) => {
        const cookie = consoleCookieOf(request.headers.cookie);
        if (!cookie) throw new TetherError('unauthenticated', 'not signed in to the console');
        const caller = await authenticateConsoleSession(ctx, { cookie, csrf: undefined, method: 'GET' });
        reply.header('cache-control', 'no-store');
        return {
          principal: {
            id: caller.principal.id,
            name: caller.principal.name,
            roles: [...caller.principal.roles],
          },
          tenant: caller.tenant.name,
          csrf: csrfTokenOf(cookie),
        };
      },
    );
    app.post(
      '/console/api/sign-out',
      {
        schema: {
          tags,
          summary: 'Sign out: the console session ends',
          headers: Type.Object({ [CSRF_HEADER]: Type.Optional(Type.String({ maxLength: 128 })) }),
          response: withProblems({ 200: Type.Object({ signed_out: Type.Boolean() }) }),
        },
      },
      async (request, reply) => {
        const cookie = consoleCookieOf(request.headers.cookie);
        if (!cookie) throw new TetherError('unauthenticated', 'not signed in to the console');
        await authenticateConsoleSession(ctx, { cookie, csrf: request.headers[CSRF_HEADER], method: 'POST' });
        await endConsoleSession(ctx, cookie);
        reply.header('set-cookie', consoleCookieHeader(ctx.config.publicUrl, undefined));
        return { signed_out: true };
      },
    );
  };
}

/** The caller of a console call that changes something: its cookie and its CSRF header. */
async function consoleCaller(ctx: BrokerContext, request: import('fastify').FastifyRequest) {
  const cookie = consoleCookieOf(request.headers.cookie);
  if (!cookie) throw new TetherError('unauthenticated', 'not signed in to the console');
  return authenticateConsoleSession(ctx, { cookie, csrf: request.headers[CSRF_HEADER], method: 'POST' });
}

/** The principal routes' part: an admin makes an enrolment link. */
export function invitationRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/principals/:ref/invitations',
      {
        schema: {
          tags: ['principals'],
          summary: 'Make a one-time passkey enrolment link for a person (admin)',
          params: Type.Object(
            { ref: Type.String({ minLength: 1, maxLength: 128 }) },
            { additionalProperties: false },
          ),
          body: Type.Optional(EmptyObject),
          response: withProblems({ 201: Type.Object({ url: Type.String(), expires_at: Type.String() }) }),
        },
      },
      async (request, reply) => {
        const invitation = await invitePrincipal(ctx, request.caller, request.params.ref);
        reply.header('cache-control', 'no-store');
        return reply
          .code(201)
          .send({ url: invitation.url, expires_at: new Date(invitation.expiresAt).toISOString() });
      },
    );
    app.post(
      '/logins/current/end',
      {
        schema: {
          tags: ['principals'],
          summary: 'End the login (tether login) behind this token: tether logout',
          body: Type.Optional(EmptyObject),
          response: withProblems({ 200: Type.Object({ ended: Type.Boolean() }) }),
        },
      },
      async (request) => {
        await endLogin(ctx, request.caller);
        return { ended: true };
      },
    );
  };
}
