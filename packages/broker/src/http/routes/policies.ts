import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  PolicySetBody,
  PolicySetView,
  PolicyValidationView,
  PolicyVersionsView,
  VersionParams,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { validatePolicySet } from '../../policy/cedar.js';
import {
  getCurrentPolicySet,
  getPolicyVersion,
  policyHistory,
  replacePolicySet,
} from '../../records/policies.js';
import { withProblems } from '../schemas/common.js';
import { policySetView } from '../views.js';

export function policyRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/policies',
      { schema: { tags: ['policies'], response: withProblems({ 200: PolicySetView }) } },
      async (request) => policySetView(await getCurrentPolicySet(ctx, request.caller)),
    );
    app.put(
      '/policies',
      { schema: { tags: ['policies'], body: PolicySetBody, response: withProblems({ 200: PolicySetView }) } },
      async (request) => policySetView(await replacePolicySet(ctx, request.caller, request.body.policies)),
    );
    app.post(
      '/policies/validate',
      {
        schema: {
          tags: ['policies'],
          body: PolicySetBody,
          response: withProblems({ 200: PolicyValidationView }),
        },
      },
      async (request) => {
        const result = validatePolicySet(request.body.policies);
        return { valid: result.ok, errors: result.errors };
      },
    );
    app.get(
      '/policies/versions',
      { schema: { tags: ['policies'], response: withProblems({ 200: PolicyVersionsView }) } },
      async (request) => ({
        versions: (await policyHistory(ctx, request.caller)).map((v) => ({
          version: v.version,
          created_by: v.createdBy,
          created_at: new Date(v.createdAt).toISOString(),
          policies: v.count,
        })),
      }),
    );
    app.get(
      '/policies/versions/:version',
      {
        schema: { tags: ['policies'], params: VersionParams, response: withProblems({ 200: PolicySetView }) },
      },
      async (request) => policySetView(await getPolicyVersion(ctx, request.caller, request.params.version)),
    );
  };
}
