import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Deleted, FederationList, FederationView, RefParams } from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import type { Federation } from '../../domain/federation.js';
import {
  createFederation,
  findFederations,
  getFederation,
  removeFederation,
} from '../../records/federations.js';
import { withProblems } from '../schemas/common.js';
import { NewFederationBody } from '../schemas/federations.js';

/** A trust record as the API answers it: snake_case, ISO times. */
export function federationView(f: Federation): FederationView {
  return {
    id: f.id,
    name: f.name,
    issuer: f.issuer,
    audience: f.audience,
    jwks_uri: f.jwksUri,
    jwks: f.jwks,
    algorithms: f.algorithms,
    principal_mapping: f.principalMapping,
    context_claims: f.contextClaims,
    task_claim: f.taskClaim,
    max_token_age: f.maxTokenAgeSeconds,
    ends_with_subject_token: f.endsWithSubjectToken,
    created_at: new Date(f.createdAt).toISOString(),
  };
}

/** `/v1/federations`: trust records for workload token exchange. Reading is open to the tenant; changes need admin. */
export function federationRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/federations',
      { schema: { tags: ['federations'], response: withProblems({ 200: FederationList }) } },
      async (request) => ({ federations: (await findFederations(ctx, request.caller)).map(federationView) }),
    );
    app.post(
      '/federations',
      {
        schema: {
          tags: ['federations'],
          body: NewFederationBody,
          response: withProblems({ 201: FederationView }),
        },
      },
      async (request, reply) => {
        const b = request.body;
        const created = await createFederation(ctx, request.caller, {
          name: b.name,
          issuer: b.issuer,
          audience: b.audience,
          jwksUri: b.jwks_uri,
          jwks: b.jwks,
          algorithms: b.algorithms,
          principalMapping: b.principal_mapping,
          contextClaims: b.context_claims,
          taskClaim: b.task_claim,
          maxTokenAgeSeconds: b.max_token_age,
          endsWithSubjectToken: b.ends_with_subject_token,
        });
        return reply.code(201).send(federationView(created));
      },
    );
    app.get(
      '/federations/:ref',
      {
        schema: { tags: ['federations'], params: RefParams, response: withProblems({ 200: FederationView }) },
      },
      async (request) => federationView(await getFederation(ctx, request.caller, request.params.ref)),
    );
    app.delete(
      '/federations/:ref',
      { schema: { tags: ['federations'], params: RefParams, response: withProblems({ 200: Deleted }) } },
      async (request) => {
        await removeFederation(ctx, request.caller, request.params.ref);
        return { deleted: true };
      },
    );
  };
}
