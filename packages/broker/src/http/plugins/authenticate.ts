import type { FastifyInstance } from 'fastify';
import { authenticateCaller } from '../../auth/authenticate-caller.js';
import { authenticateConsoleSession, CSRF_HEADER, consoleCookieOf } from '../../auth/console-session.js';
import type { BrokerContext, Caller } from '../../core/context.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; set by the authentication hook on every protected route. */
    caller: Caller;
  }
}

/** Applies token authentication (DPoP-bound or Bearer) to every route registered in `scope`. */
export function requireAuthentication(scope: FastifyInstance, ctx: BrokerContext): void {
  scope.addHook('onRequest', async (request) => {
    // A console browser has no token: its session cookie (and, to change anything, its CSRF
    // header) stands for it. A request that brings a token is judged by the token alone.
    const cookie =
      request.headers.authorization === undefined ? consoleCookieOf(request.headers.cookie) : undefined;
    request.caller =
      cookie === undefined
        ? await authenticateCaller(ctx, {
            authorization: request.headers.authorization,
            dpop: request.headers.dpop,
            method: request.method,
            url: request.url,
          })
        : await authenticateConsoleSession(ctx, {
            cookie,
            csrf: request.headers[CSRF_HEADER],
            method: request.method,
          });
    request.log = request.log.child({
      principal: request.caller.principal.id,
      tenant: request.caller.tenant.id,
    });
  });
}
