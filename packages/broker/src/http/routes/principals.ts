import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  Deleted,
  KeyParams,
  KeyView,
  NewKeyBody,
  NewPrincipalBody,
  PrincipalChangesBody,
  PrincipalList,
  PrincipalView,
  RefParams,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import {
  addPrincipalKey,
  changePrincipal,
  createPrincipal,
  findPrincipals,
  getPrincipal,
  removePrincipalKey,
} from '../../records/principals.js';
import { withProblems } from '../schemas/common.js';
import { keyView, principalView } from '../views.js';

export function principalRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/principals',
      {
        schema: {
          tags: ['principals'],
          response: withProblems({ 200: PrincipalList }),
        },
      },
      async (request) => ({
        principals: (await findPrincipals(ctx, request.caller)).map((p) => principalView(p)),
      }),
    );
    app.post(
      '/principals',
      {
        schema: {
          tags: ['principals'],
          body: NewPrincipalBody,
          response: withProblems({ 201: PrincipalView }),
        },
      },
      async (request, reply) => {
        const principal = await createPrincipal(ctx, request.caller, request.body);
        const { keys } = await getPrincipal(ctx, request.caller, principal.id);
        return reply.code(201).send(principalView(principal, keys));
      },
    );
    app.get(
      '/principals/:ref',
      { schema: { tags: ['principals'], params: RefParams, response: withProblems({ 200: PrincipalView }) } },
      async (request) => {
        const { principal, keys } = await getPrincipal(ctx, request.caller, request.params.ref);
        return principalView(principal, keys);
      },
    );
    app.patch(
      '/principals/:ref',
      {
        schema: {
          tags: ['principals'],
          params: RefParams,
          body: PrincipalChangesBody,
          response: withProblems({ 200: PrincipalView }),
        },
      },
      async (request) =>
        principalView(await changePrincipal(ctx, request.caller, request.params.ref, request.body)),
    );
    app.post(
      '/principals/:ref/keys',
      {
        schema: {
          tags: ['principals'],
          params: RefParams,
          body: NewKeyBody,
          response: withProblems({ 201: KeyView }),
        },
      },
      async (request, reply) => {
        const { jwk, proof } = request.body;
        const key = await addPrincipalKey(ctx, request.caller, request.params.ref, jwk, proof);
        return reply.code(201).send(keyView(key));
      },
    );
    app.delete(
      '/principals/:ref/keys/:kid',
      { schema: { tags: ['principals'], params: KeyParams, response: withProblems({ 200: Deleted }) } },
      async (request) => {
        await removePrincipalKey(ctx, request.caller, request.params.ref, request.params.kid);
        return { deleted: true };
      },
    );
  };
}
