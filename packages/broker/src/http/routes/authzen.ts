import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  AuthzenDecision,
  AuthzenEvaluationRequest,
  AuthzenEvaluationsRequest,
  AuthzenEvaluationsResponse,
  AuthzenMetadata,
} from '@tether-broker/protocol/api';
import { evaluateAccess, evaluateAccessMany } from '../../authzen/evaluate-access.js';
import type { BrokerContext } from '../../core/context.js';
import { withProblems } from '../schemas/common.js';

/** The AuthZEN endpoints' paths (the defaults of AuthZEN 1.0 §10.1). */
export const AUTHZEN_EVALUATION_PATH = '/access/v1/evaluation';
export const AUTHZEN_EVALUATIONS_PATH = '/access/v1/evaluations';

/** A request identifier (`X-Request-ID`, AuthZEN §10.1.3) sent by the PEP comes back unchanged. */
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/**
 * OpenID AuthZEN 1.0 evaluation API (PDP): gateways and services in any language ask whether a
 * subject may perform an action on a resource, and Tether answers from its sessions. Registered
 * behind the same authentication and per-principal limits as `/v1`; only PEPs may ask.
 */
export function authzenRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.addHook('onSend', async (request, reply) => {
      const id = request.headers['x-request-id'];
      if (typeof id === 'string' && REQUEST_ID.test(id)) reply.header('x-request-id', id);
    });
    app.post(
      '/evaluation',
      {
        schema: {
          tags: ['authzen'],
          summary: 'AuthZEN Access Evaluation (§6): may this subject do this action on this resource?',
          body: AuthzenEvaluationRequest,
          response: withProblems({ 200: AuthzenDecision }),
        },
      },
      async (request) => evaluateAccess(ctx, request.caller, request.body),
    );
    app.post(
      '/evaluations',
      {
        schema: {
          tags: ['authzen'],
          summary: 'AuthZEN Access Evaluations (§7): several evaluations in one call',
          body: AuthzenEvaluationsRequest,
          response: withProblems({ 200: AuthzenEvaluationsResponse }),
        },
      },
      async (request) => evaluateAccessMany(ctx, request.caller, request.body),
    );
  };
}

/** `GET /.well-known/authzen-configuration` (AuthZEN §9): public, like the OAuth metadata. */
export function authzenMetadataRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  const issuer = ctx.config.publicUrl;
  const metadata: AuthzenMetadata = {
    policy_decision_point: issuer,
    access_evaluation_endpoint: `${issuer}${AUTHZEN_EVALUATION_PATH}`,
    access_evaluations_endpoint: `${issuer}${AUTHZEN_EVALUATIONS_PATH}`,
  };
  return async (app) => {
    app.get(
      '/.well-known/authzen-configuration',
      { schema: { tags: ['authzen'], response: withProblems({ 200: AuthzenMetadata }) } },
      async (_request, reply) => reply.header('cache-control', 'max-age=300').send(metadata),
    );
  };
}
