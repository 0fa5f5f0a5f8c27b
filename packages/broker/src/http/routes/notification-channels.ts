import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  CreatedNotificationChannelView,
  Deleted,
  NewNotificationChannelBody,
  NotificationChannelList,
  NotificationChannelRefParams,
  NotificationChannelView,
} from '@tether-broker/protocol/api';
import { toPeopleOf } from '../../core/notification-outbox.js';
import type { NotificationChannel } from '../../domain/notification.js';
import { createChannel, findChannels, getChannel, removeChannel } from '../../notifications/channels.js';
import { teamsFormatOf } from '../../notifications/messages.js';
import { withProblems } from '../schemas/common.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A channel as answered: where it delivers, never how it authenticates there. */
export function notificationChannelView(c: NotificationChannel): NotificationChannelView {
  const s = c.settings;
  const common = {
    id: c.id,
    name: c.name,
    kind: c.kind,
    events: c.events,
    last_success_at: iso(c.lastSuccessAt),
    last_failure_at: iso(c.lastFailureAt),
    last_error: c.lastError,
    created_by: c.createdBy,
    created_at: new Date(c.createdAt).toISOString(),
  };
  switch (s.kind) {
    case 'email':
      return {
        ...common,
        target: `smtp://${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`,
        email: {
          host: s.host,
          port: s.port,
          tls: s.tls,
          from: s.from,
          to: s.to,
          to_people: toPeopleOf(s),
          username: s.username,
        },
      };
    case 'webhook':
      return { ...common, target: s.url };
    case 'teams':
      return { ...common, target: s.target, teams: { format: teamsFormatOf(s) } };
    default:
      return { ...common, target: s.target };
  }
}

/**
 * `/v1/notification-channels`: where the tenant is told of requests waiting or resolved and of
 * sessions ending. Admins create and remove; auditors may read.
 */
export function notificationChannelRoutes(
  ctx: Parameters<typeof createChannel>[0],
): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/notification-channels',
      { schema: { tags: ['notifications'], response: withProblems({ 200: NotificationChannelList }) } },
      async (request) => ({
        channels: (await findChannels(ctx, request.caller)).map(notificationChannelView),
      }),
    );
    app.post(
      '/notification-channels',
      {
        schema: {
          tags: ['notifications'],
          body: NewNotificationChannelBody,
          response: withProblems({ 201: CreatedNotificationChannelView }),
        },
      },
      async (request, reply) => {
        const created = await createChannel(ctx, request.caller, request.body);
        return reply
          .code(201)
          .header('cache-control', 'no-store')
          .send({
            ...notificationChannelView(created.channel),
            ...(created.signingSecret === undefined ? {} : { signing_secret: created.signingSecret }),
          });
      },
    );
    app.get(
      '/notification-channels/:ref',
      {
        schema: {
          tags: ['notifications'],
          params: NotificationChannelRefParams,
          response: withProblems({ 200: NotificationChannelView }),
        },
      },
      async (request) => notificationChannelView(await getChannel(ctx, request.caller, request.params.ref)),
    );
    app.delete(
      '/notification-channels/:ref',
      {
        schema: {
          tags: ['notifications'],
          params: NotificationChannelRefParams,
          response: withProblems({ 200: Deleted }),
        },
      },
      async (request) => {
        await removeChannel(ctx, request.caller, request.params.ref);
        return { deleted: true };
      },
    );
  };
}
