import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { BrokerContext } from '../../core/context.js';
import { cutOffTenant } from '../../sessions/tenant-cutoff.js';
import { withProblems } from '../schemas/common.js';

/** An unknown field is refused, like everywhere in the API. */
const Strict = { additionalProperties: false } as const;

export const TenantCutoffBody = Type.Object(
  {
    reason: Type.String({
      minLength: 1,
      maxLength: 200,
      // Something to read in the audit trail, not only blanks.
      pattern: '\\S',
      description: 'why, for the audit trail',
    }),
    end_sessions: Type.Optional(
      Type.Boolean({ description: 'also end every live session of the tenant (default false)' }),
    ),
  },
  Strict,
);

export const TenantCutoffView = Type.Object(
  {
    seq: Type.Integer({ description: "the tenant_cutoff event's position in the revocation log" }),
    before: Type.Integer({ description: 'epoch seconds: tokens issued (iat) before it are refused' }),
    ended_sessions: Type.Array(Type.String(), { description: 'the sessions the cut-off ended' }),
  },
  Strict,
);

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
