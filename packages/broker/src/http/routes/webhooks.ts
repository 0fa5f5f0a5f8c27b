import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TetherError } from '@tether-broker/protocol';
import {
  CreatedWebhookView,
  Deleted,
  DeliveryParams,
  DeliveryView,
  NewWebhookBody,
  WebhookList,
  WebhookRefParams,
  WebhookView,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { WEBHOOK_KINDS, type Webhook } from '../../domain/ticket.js';
import { receiveTicketDelivery } from '../../tickets/ticket-webhook.js';
import {
  createWebhook,
  deliveryUrl,
  findWebhooks,
  getWebhook,
  removeWebhook,
} from '../../tickets/webhooks.js';
import { withProblems } from '../schemas/common.js';

/**
 * Ticket-system payloads are larger than API bodies (a Jira issue carries every field), so
 * deliveries get a limit of their own, still bounded.
 */
const DELIVERY_BODY_LIMIT = 1024 * 1024;

function webhookView(ctx: BrokerContext, w: Webhook): WebhookView {
  return {
    id: w.id,
    name: w.name,
    kind: w.kind,
    url: deliveryUrl(ctx, w),
    assignee_attribute: w.assigneeAttribute,
    created_by: w.createdBy,
    created_at: new Date(w.createdAt).toISOString(),
  };
}

/** `/v1/webhooks`: registering ticket sources. Admins create and remove; auditors may read. */
export function webhookRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/webhooks',
      {
        schema: {
          tags: ['tickets'],
          response: withProblems({ 200: WebhookList }),
        },
      },
      async (request) => ({
        webhooks: (await findWebhooks(ctx, request.caller)).map((w) => webhookView(ctx, w)),
      }),
    );
    app.post(
      '/webhooks',
      {
        schema: {
          tags: ['tickets'],
          body: NewWebhookBody,
          response: withProblems({ 201: CreatedWebhookView }),
        },
      },
      async (request, reply) => {
        const { kind, name, assignee_attribute } = request.body;
        const created = await createWebhook(ctx, request.caller, {
          kind,
          name,
          assigneeAttribute: assignee_attribute,
        });
        return reply
          .code(201)
          .header('cache-control', 'no-store')
          .send({ ...webhookView(ctx, created.webhook), secret: created.secret });
      },
    );
    app.get(
      '/webhooks/:ref',
      {
        schema: { tags: ['tickets'], params: WebhookRefParams, response: withProblems({ 200: WebhookView }) },
      },
      async (request) => webhookView(ctx, await getWebhook(ctx, request.caller, request.params.ref)),
    );
    app.delete(
      '/webhooks/:ref',
      { schema: { tags: ['tickets'], params: WebhookRefParams, response: withProblems({ 200: Deleted }) } },
      async (request) => {
        await removeWebhook(ctx, request.caller, request.params.ref);
        return { deleted: true };
      },
    );
  };
}

/**
 * `POST /v1/webhooks/{github,jira,generic}/:id`: deliveries from ticket systems. No token:
 * the HMAC signature over the raw body is the authentication, so the body is kept as the
 * bytes that were signed, and only JSON is read.
 */
export function webhookDeliveryRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(
      'application/json',
      { parseAs: 'buffer', bodyLimit: DELIVERY_BODY_LIMIT },
      (_request, body, done) => done(null, body),
    );
    for (const kind of WEBHOOK_KINDS) {
      app.post(
        `/webhooks/${kind}/:id`,
        {
          schema: {
            tags: ['tickets'],
            summary: `a signed ${kind} webhook delivery`,
            params: DeliveryParams,
            response: withProblems({ 200: DeliveryView }),
          },
        },
        async (request) => {
          const body = request.body === undefined ? Buffer.alloc(0) : request.body;
          if (!Buffer.isBuffer(body))
            throw new TetherError('invalid_request', 'the delivery body is not JSON');
          const answer = await receiveTicketDelivery(ctx, kind, request.params.id, request.headers, body);
          return {
            outcome: answer.outcome,
            event: answer.event,
            ...(answer.ticket === undefined ? {} : { ticket: answer.ticket }),
            ...(answer.state === undefined ? {} : { state: answer.state }),
            ...(answer.endedSessions === undefined ? {} : { ended_sessions: answer.endedSessions }),
            ...(answer.cancelledRequests === undefined
              ? {}
              : { cancelled_requests: answer.cancelledRequests }),
          };
        },
      );
    }
  };
}
