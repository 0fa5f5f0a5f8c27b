import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TetherError } from '@tether-broker/protocol';
import { IdParams, MeView, TenantList, TenantView } from '@tether-broker/protocol/api';
import { withProblems } from '../schemas/common.js';
import { principalView, tenantView } from '../views.js';

/**
 * A caller sees its own tenant and nothing else: tenants are created where the store is
 * (`tether init`), never over the API, so no token can reach across tenants.
 */
export function tenantRoutes(): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/tenants',
      {
        schema: {
          tags: ['tenants'],
          response: withProblems({ 200: TenantList }),
        },
      },
      async (request) => ({ tenants: [tenantView(request.caller.tenant)] }),
    );
    app.get(
      '/tenants/:id',
      { schema: { tags: ['tenants'], params: IdParams, response: withProblems({ 200: TenantView }) } },
      async (request) => {
        if (request.params.id !== request.caller.tenant.id)
          throw new TetherError('not_found', 'no such tenant');
        return tenantView(request.caller.tenant);
      },
    );
    app.get(
      '/me',
      {
        schema: {
          tags: ['tenants'],
          response: withProblems({ 200: MeView }),
        },
      },
      async (request) => ({
        principal: principalView(request.caller.principal),
        tenant: tenantView(request.caller.tenant),
      }),
    );
  };
}
