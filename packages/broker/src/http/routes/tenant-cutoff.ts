import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TenantCutoffBody, TenantCutoffView } from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { cutOffTenant } from '../../sessions/tenant-cutoff.js';
import { withProblems } from '../schemas/common.js';

/**
 * `POST /v1/tenant/cutoff`: an admin revokes every token of their own tenant issued until now
 * (a `tenant_cutoff` revocation event), and ends its live sessions when asked.
 */
export function tenantCutoffRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/tenant/cutoff',
      {
        schema: {
          tags: ['tenants'],
          description:
            "Every enforcement point refuses the tokens of the caller's tenant issued before `before`; sessions not ended get new tokens by refreshing. Admin role.",
          body: TenantCutoffBody,
          response: withProblems({ 200: TenantCutoffView }),
        },
      },
      async (request) => {
        const cutoff = await cutOffTenant(ctx, request.caller, {
          reason: request.body.reason,
          endSessions: request.body.end_sessions ?? false,
        });
        return { seq: cutoff.seq, before: cutoff.before, ended_sessions: cutoff.endedSessions };
      },
    );
  };
}
