import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { TetherError } from '@tether-broker/protocol';
import { Strict } from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { revocationStreamStart } from '../../enforcement/revocation-stream.js';
import { RevocationSigner } from '../../revocation/signing.js';
import { RevocationStreams } from '../../revocation/stream.js';
import { withProblems } from '../schemas/common.js';

/** A position in a tenant's revocation log, as a decimal string (below 10^15, so exact as a number). */
const POSITION_PATTERN = '^(0|[1-9][0-9]{0,14})$';

const EventsQuery = Type.Object(
  {
    after: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 999_999_999_999_999,
        description: 'stream the events after this sequence number (Last-Event-ID wins when both are sent)',
      }),
    ),
  },
  Strict,
);

const EventsHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({
      pattern: POSITION_PATTERN,
      description: 'the id of the last event received: the stream resumes after it',
    }),
  ),
});

const EventStream = Type.String({
  description:
    'text/event-stream: `id: <seq>` `event: revocation` `data: <tether-event+jwt>` per event, in order, ' +
    'and `event: heartbeat` `data: <tether-heartbeat+jwt>` every heartbeat interval',
});

/** `GET /v1/events`: the tenant's revocation log as Server-Sent Events, for enforcement points. */
export function eventRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    const streams = new RevocationStreams({
      store: ctx.store,
      clock: ctx.clock,
      fanout: ctx.revocations,
      // Heartbeats shared by streams at the same position within a quarter interval (≤ 250 ms).
      signer: new RevocationSigner(() => ctx.keys.signer(), ctx.config.publicUrl, {
        heartbeatShareMs: Math.min(250, ctx.config.heartbeatIntervalMs / 4),
      }),
      heartbeatIntervalMs: ctx.config.heartbeatIntervalMs,
      snapshotWhenBehind: ctx.config.revocationSnapshotBehind,
      maxLifetimeMs: ctx.config.apiTokenTtlSeconds * 1000,
    });
    /** Streams open per PEP principal (tenant/principal), in this process. */
    const openStreams = new Map<string, number>();
    // preClose, not onClose: onClose runs after the server has stopped, which it never would
    // while a stream holds its connection open.
    app.addHook('preClose', async () => streams.closeAll());

    app.get(
      '/events',
      {
        // A HEAD request would open a stream that can carry no body.
        exposeHeadRoute: false,
        schema: {
          tags: ['enforcement'],
          summary: 'Follow the revocation log (Server-Sent Events)',
          querystring: EventsQuery,
          headers: EventsHeaders,
          response: withProblems({ 200: EventStream }),
        },
      },
      async (request, reply) => {
        // A cap per PEP principal: each stream holds a connection and a listener for as long as
        // its token lives, so one principal's token must not be able to open them without end.
        const holder = `${request.caller.tenant.id}/${request.caller.principal.id}`;
        const open = openStreams.get(holder) ?? 0;
        if (open >= ctx.config.limits.streamsPerPrincipal) {
          reply.header('retry-after', String(Math.ceil(ctx.config.heartbeatIntervalMs / 1000) * 5));
          throw new TetherError(
            'rate_limited',
            `this principal already has ${open} revocation streams open (limit ${ctx.config.limits.streamsPerPrincipal})`,
          );
        }
        // The place is taken before anything else is done (concurrent opens cannot overshoot),
        // and given back when the stream ends or fails to start.
        openStreams.set(holder, open + 1);
        const release = () => {
          const left = (openStreams.get(holder) ?? 1) - 1;
          if (left > 0) openStreams.set(holder, left);
          else openStreams.delete(holder);
        };
        let start: Awaited<ReturnType<typeof revocationStreamStart>>;
        try {
          start = await revocationStreamStart(ctx, request.caller, {
            lastEventId: request.headers['last-event-id'],
            after: request.query.after,
          });
        } catch (err) {
          release();
          throw err;
        }
        // A PEP that hung up while the stream was being prepared has already closed its response.
        if (reply.raw.closed) release();
        else reply.raw.once('close', release);
        // From here on the stream writes the response itself; errors no longer reach the error handler.
        reply.hijack();
        streams.start(reply.raw, { ...start, requestId: request.id, log: request.log });
      },
    );
  };
}
