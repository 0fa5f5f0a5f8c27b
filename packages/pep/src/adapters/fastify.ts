import type { IncomingMessage } from 'node:http';
import type { Decision, Enforcer } from '../enforcer.js';
import { denialResponse } from './denial.js';

/** The route option: `{ tether: { action, resource } }`; `resource` may be computed from the request. */
export interface TetherRouteOption {
  action: string;
  resource: string | ((request: FastifyLikeRequest) => string);
}

// Structural types, so that this package does not depend on fastify.
interface FastifyLikeRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  params: unknown;
  tether?: Decision;
}
interface FastifyLikeReply {
  code(status: number): FastifyLikeReply;
  headers(values: Record<string, string>): FastifyLikeReply;
  send(body: string): unknown;
}
type Hook = (request: FastifyLikeRequest, reply: FastifyLikeReply) => Promise<unknown>;
interface FastifyLikeRoute {
  tether?: TetherRouteOption;
  onRequest?: Hook | Hook[];
  preHandler?: Hook | Hook[];
}
interface FastifyLike {
  addHook(name: 'onRoute', hook: (route: FastifyLikeRoute) => void): unknown;
  decorateRequest(name: string, value: unknown): unknown;
}

/**
 * A Fastify plugin: every route declared with `{ tether: { action, resource } }` is decided by
 * the enforcer before its handler (a `preHandler`, so that route params are parsed); a denial is
 * answered with problem+json and the handler never runs. The allowed decision is `request.tether`.
 * Register it before the routes it protects (it sees routes through `onRoute`).
 *
 * @example
 * ```ts
 * await app.register(tetherFastify(pep));
 * app.get('/rules/:id', { tether: { action: 'firewall:rules.read', resource: (r) => `firewall/${r.params.id}` } }, handler);
 * ```
 */
export function tetherFastify(enforcer: Enforcer): (app: unknown) => Promise<void> {
  // `unknown`, checked here: a real FastifyInstance (whose many addHook overloads no structural
  // type of ours matches) is accepted by `app.register(...)` without a cast.
  const plugin = async (instance: unknown) => {
    const app = asFastifyLike(instance);
    app.decorateRequest('tether', undefined);
    app.addHook('onRoute', (route) => {
      const option = route.tether;
      if (option === undefined) return;
      if (typeof option.action !== 'string' || option.action === '')
        throw new TypeError('tether route option: action must be a non-empty string');
      const guard: Hook = async (request, reply) => {
        const resource = typeof option.resource === 'function' ? option.resource(request) : option.resource;
        const decision = await enforcer.authorize({
          method: request.method,
          url: request.url,
          headers: request.headers,
          action: option.action,
          resource,
        });
        if (!decision.allow) {
          const { status, headers, body } = denialResponse(decision);
          return reply.code(status).headers(headers).send(body);
        }
        request.tether = decision;
        // A fresh nonce when the window rolled (RFC 9449 §9), set before the handler replies.
        if (decision.dpopNonce !== undefined) reply.headers({ 'dpop-nonce': decision.dpopNonce });
        return undefined;
      };
      const existing =
        route.preHandler === undefined
          ? []
          : Array.isArray(route.preHandler)
            ? route.preHandler
            : [route.preHandler];
      route.preHandler = [guard, ...existing];
    });
  };
  // What fastify-plugin does: the hooks apply to the routes of the registering scope too.
  // (Set on the function that is returned, which register() looks at.)
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return plugin;
}

function asFastifyLike(instance: unknown): FastifyLike {
  const app = instance as Partial<FastifyLike> | null;
  if (typeof app?.addHook !== 'function' || typeof app.decorateRequest !== 'function')
    throw new TypeError(
      'tetherFastify: register it on a Fastify instance (app.register(tetherFastify(enforcer)))',
    );
  return app as FastifyLike;
}
