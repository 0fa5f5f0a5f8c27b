import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  CancelBody,
  IdParams,
  NewRequestBody,
  RequestList,
  RequestQuery,
  RequestView,
  ReviewBody,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { cancelRequest } from '../../requests/cancel-request.js';
import { findRequests, getRequest } from '../../requests/query-requests.js';
import { requestAccess } from '../../requests/request-access.js';
import { reviewRequest } from '../../requests/review-request.js';
import { openWatch, streamRequest } from '../../requests/watch-request.js';
import { emptyBodyAsObject, withProblems } from '../schemas/common.js';
import { requestView } from '../views.js';

export function requestRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/requests',
      { schema: { tags: ['requests'], body: NewRequestBody, response: withProblems({ 201: RequestView }) } },
      async (request, reply) => {
        const { duration, ...rest } = request.body;
        const created = await requestAccess(ctx, request.caller, { ...rest, durationSeconds: duration });
        return reply.code(201).send(requestView(created, []));
      },
    );
    app.get(
      '/requests',
      {
        schema: {
          tags: ['requests'],
          querystring: RequestQuery,
          response: withProblems({ 200: RequestList }),
        },
      },
      async (request) => ({
        requests: (await findRequests(ctx, request.caller, request.query)).map((r) => requestView(r)),
      }),
    );
    app.get(
      '/requests/:id',
      { schema: { tags: ['requests'], params: IdParams, response: withProblems({ 200: RequestView }) } },
      async (request) => {
        const { request: found, reviews } = await getRequest(ctx, request.caller, request.params.id);
        return requestView(found, reviews);
      },
    );
    app.get(
      '/requests/:id/events',
      {
        // A HEAD request would open a stream that can carry no body.
        exposeHeadRoute: false,
        schema: {
          tags: ['requests'],
          summary:
            'Follow a request until it is decided (Server-Sent Events: event "request", the request view)',
          params: IdParams,
          response: withProblems({ 200: Type.String({ description: 'text/event-stream' }) }),
        },
      },
      async (request, reply) => {
        const watch = await openWatch(ctx, request.caller, request.params.id);
        reply.hijack();
        try {
          await streamRequest(ctx, request.caller, watch, reply.raw, requestView);
        } finally {
          watch.release();
        }
      },
    );
    for (const decision of ['approve', 'deny'] as const) {
      app.post(
        `/requests/:id/${decision}`,
        {
          preValidation: emptyBodyAsObject,
          schema: {
            tags: ['requests'],
            params: IdParams,
            body: ReviewBody,
            response: withProblems({ 200: RequestView }),
          },
        },
        async (request) => {
          await reviewRequest(ctx, request.caller, request.params.id, decision, request.body.comment ?? '');
          const { request: current, reviews } = await getRequest(ctx, request.caller, request.params.id);
          return requestView(current, reviews);
        },
      );
    }
    app.post(
      '/requests/:id/cancel',
      {
        preValidation: emptyBodyAsObject,
        schema: {
          tags: ['requests'],
          params: IdParams,
          body: CancelBody,
          response: withProblems({ 200: RequestView }),
        },
      },
      async (request) =>
        requestView(await cancelRequest(ctx, request.caller, request.params.id, request.body.reason ?? '')),
    );
  };
}
