import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { NAME_PATTERN, TetherError } from '@tether-broker/protocol';
import {
  AccessRequestSubmission,
  AccessRequestTask,
  AuthzenDecision,
  AuthzenEvaluationRequest,
  AuthzenEvaluationsRequest,
  AuthzenEvaluationsResponse,
  AuthzenMetadata,
} from '@tether-broker/protocol/api';
import {
  accessRequestTask,
  requestSchema,
  submitAccessRequest,
  TASK_WAIT_MAX_SECONDS,
} from '../../authzen/access-requests.js';
import { evaluateAccess, evaluateAccessMany } from '../../authzen/evaluate-access.js';
import { accessRequestsPath } from '../../authzen/requestable.js';
import type { BrokerContext } from '../../core/context.js';
import { withProblems } from '../schemas/common.js';

/** The AuthZEN endpoints' paths (the defaults of AuthZEN 1.0 §10.1). */
export const AUTHZEN_EVALUATION_PATH = '/access/v1/evaluation';
export const AUTHZEN_EVALUATIONS_PATH = '/access/v1/evaluations';

/** A request identifier (`X-Request-ID`, AuthZEN §10.1.3) sent by the PEP comes back unchanged. */
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;
/** Deepest nesting a body may have: `properties` and `context` are free-form, not unbounded. */
const MAX_DEPTH = 16;

/** The nesting depth of a parsed body, walked iteratively (a hostile body may nest deeply). */
function depthOf(value: unknown): number {
  let deepest = 0;
  const pending: [unknown, number][] = [[value, 0]];
  while (pending.length > 0) {
    const [v, depth] = pending.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    deepest = Math.max(deepest, depth + 1);
    if (deepest > MAX_DEPTH) return deepest;
    for (const member of Object.values(v)) pending.push([member, depth + 1]);
  }
  return deepest;
}

/**
 * OpenID AuthZEN 1.0 evaluation API (PDP): gateways and services in any language ask whether a
 * subject may perform an action on a resource, and Tether answers from its sessions. Registered
 * behind the same authentication and per-principal limits as `/v1`; only PEPs may ask.
 */
export function authzenRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.addHook('preValidation', async (request) => {
      if (depthOf(request.body) > MAX_DEPTH)
        throw new TetherError('invalid_request', `the body nests deeper than ${MAX_DEPTH} levels`);
    });
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
    app.post(
      '/requests',
      {
        schema: {
          tags: ['authzen'],
          summary: 'Access Request profile §10: ask for what a requestable denial named; answers a task',
          body: AccessRequestSubmission,
          response: withProblems({ 201: AccessRequestTask, 202: AccessRequestTask, 200: AccessRequestTask }),
        },
      },
      async (request, reply) => {
        const key = request.headers['idempotency-key'];
        const idempotencyKey = typeof key === 'string' && IDEMPOTENCY_KEY.test(key) ? key : undefined;
        if (key !== undefined && idempotencyKey === undefined)
          throw new TetherError('invalid_request', 'Idempotency-Key must be 1-255 printable characters');
        const { created, task } = await submitAccessRequest(
          ctx,
          request.caller,
          request.body,
          idempotencyKey,
        );
        // §10.2: 201 when the task is already decided (auto-approved), 202 while it waits.
        const status = !created ? 200 : task.task.status === 'pending' ? 202 : 201;
        return reply.code(status).header('location', task.task.status_endpoint).send(task);
      },
    );
    app.get(
      '/requests/:id',
      {
        schema: {
          tags: ['authzen'],
          summary: 'Access Request profile §11: the status of a task',
          params: Type.Object({ id: Type.String({ pattern: '^req_[0-9a-z]{26}$' }) }),
          querystring: Type.Object(
            {
              wait: Type.Optional(
                Type.Integer({
                  minimum: 1,
                  maximum: TASK_WAIT_MAX_SECONDS,
                  description: 'hold the answer up to this many seconds until the status changes',
                }),
              ),
              unless: Type.Optional(
                Type.String({
                  maxLength: 16,
                  description: 'with wait: the status to wait past (default: the current one)',
                }),
              ),
            },
            { additionalProperties: false },
          ),
          response: withProblems({ 200: AccessRequestTask }),
        },
      },
      async (request) => {
        const { wait, unless } = request.query;
        const socket = request.raw.socket;
        return accessRequestTask(
          ctx,
          request.caller,
          request.params.id,
          wait === undefined ? undefined : { seconds: wait, unless, gone: () => socket.destroyed },
        );
      },
    );
    app.get(
      '/requests/schema/:template',
      {
        schema: {
          tags: ['authzen'],
          summary: 'Access Request profile §7: what a request for this template needs (JSON Schema)',
          params: Type.Object({ template: Type.String({ pattern: NAME_PATTERN, maxLength: 128 }) }),
        },
      },
      async (request) => requestSchema(ctx, request.caller, request.params.template),
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
    access_request_endpoint: `${issuer}${accessRequestsPath}`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    capabilities: ['urn:openid:authzen:capability:access-request'],
  };
  return async (app) => {
    app.get(
      '/.well-known/authzen-configuration',
      { schema: { tags: ['authzen'], response: withProblems({ 200: AuthzenMetadata }) } },
      async (_request, reply) => reply.header('cache-control', 'max-age=300').send(metadata),
    );
  };
}
