import type { FastifyInstance } from 'fastify';
import { authenticateCaller } from '../../auth/authenticate-caller.js';
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
    request.caller = await authenticateCaller(ctx, {
      authorization: request.headers.authorization,
      dpop: request.headers.dpop,
      method: request.method,
      url: request.url,
    });
    request.log = request.log.child({
      principal: request.caller.principal.id,
      tenant: request.caller.tenant.id,
    });
  });
}
