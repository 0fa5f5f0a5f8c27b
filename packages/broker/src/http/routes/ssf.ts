import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import {
  PollBody,
  PollParams,
  PollView,
  StatusView,
  StreamIdQuery,
  StreamQuery,
  StreamView,
  TransmitterMetadata,
} from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { eventsDelivered, pollEndpoint, type Stream } from '../../domain/ssf-stream.js';
import {
  DELIVERY_METHODS,
  EVENTS_SUPPORTED,
  methodUri,
  SSF_SPEC_VERSION,
} from '../../domain/ssf-vocabulary.js';
import { pollSets } from '../../ssf-streams/poll.js';
import {
  readStreamStatus,
  requestVerification,
  updateStreamStatus,
} from '../../ssf-streams/stream-status.js';
import {
  createStream,
  type DeliveryInput,
  readStream,
  readStreams,
  removeStream,
  updateStream,
} from '../../ssf-streams/streams.js';
import { withProblems } from '../schemas/common.js';
import {
  CreateStreamBody,
  type DeliveryBody,
  StatusBody,
  UpdateStreamBody,
  VerifyBody,
} from '../schemas/ssf.js';

const TAGS = ['signals'];

/** A stream as SSF 1.0 §8.1.1 shows it. The Authorization header is write-only and never shown. */
function streamView(ctx: BrokerContext, s: Stream): StreamView {
  return {
    stream_id: s.id,
    iss: ctx.config.publicUrl,
    aud: s.aud.length === 1 ? (s.aud[0] as string) : s.aud,
    events_supported: [...EVENTS_SUPPORTED],
    events_requested: s.eventsRequested,
    events_delivered: eventsDelivered(s.eventsRequested),
    delivery: {
      method: methodUri(s.method),
      endpoint_url: s.endpointUrl ?? pollEndpoint(ctx.config.publicUrl, s.id),
    },
    ...(s.description === '' ? {} : { description: s.description }),
  };
}

function deliveryInput(d: Static<typeof DeliveryBody> | undefined): DeliveryInput | undefined {
  return d && { method: d.method, endpointUrl: d.endpoint_url, authorizationHeader: d.authorization_header };
}

const audList = (aud: string | string[] | undefined) => (typeof aud === 'string' ? [aud] : aud);

/** `/.well-known/ssf-configuration`: the transmitter configuration metadata (SSF 1.0 §7). Public. */
export function ssfDiscoveryRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/.well-known/ssf-configuration',
      { schema: { tags: ['discovery'], response: { 200: TransmitterMetadata } } },
      async () => {
        const issuer = ctx.config.publicUrl;
        return {
          spec_version: SSF_SPEC_VERSION,
          issuer,
          jwks_uri: `${issuer}/.well-known/jwks.json`,
          delivery_methods_supported: [...DELIVERY_METHODS],
          configuration_endpoint: `${issuer}/v1/ssf/streams`,
          status_endpoint: `${issuer}/v1/ssf/status`,
          verification_endpoint: `${issuer}/v1/ssf/verify`,
          // Receivers are principals: a token from /oauth/token (client credentials with
          // private_key_jwt), DPoP-bound or Bearer.
          authorization_schemes: [{ spec_urn: 'urn:ietf:rfc:6749' }, { spec_urn: 'urn:ietf:rfc:9449' }],
          default_subjects: 'ALL',
        };
      },
    );
  };
}

/** Stream management (SSF 1.0 §8) and poll delivery (RFC 8936), under `/v1/ssf`. */
export function ssfRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    // A long poll must not hold the server's shutdown for its whole wait.
    const closing = new AbortController();
    app.addHook('preClose', async () => closing.abort());
    app.addHook('onSend', async (_request, reply) => {
      reply.header('cache-control', 'no-store');
    });

    app.post(
      '/ssf/streams',
      { schema: { tags: TAGS, body: CreateStreamBody, response: withProblems({ 201: StreamView }) } },
      async (request, reply) => {
        const b = request.body;
        const stream = await createStream(ctx, request.caller, {
          eventsRequested: b.events_requested,
          delivery: deliveryInput(b.delivery),
          description: b.description,
          aud: audList(b.aud),
        });
        return reply.code(201).send(streamView(ctx, stream));
      },
    );
    app.get(
      '/ssf/streams',
      {
        schema: {
          tags: TAGS,
          querystring: StreamQuery,
          response: withProblems({ 200: Type.Union([StreamView, Type.Array(StreamView)]) }),
        },
      },
      async (request) => {
        const id = request.query.stream_id;
        if (id !== undefined) return streamView(ctx, await readStream(ctx, request.caller, id));
        return (await readStreams(ctx, request.caller)).map((s) => streamView(ctx, s));
      },
    );
    for (const [method, mode] of [
      ['PATCH', 'patch'],
      ['PUT', 'replace'],
    ] as const) {
      app.route({
        method,
        url: '/ssf/streams',
        schema: { tags: TAGS, body: UpdateStreamBody, response: withProblems({ 200: StreamView }) },
        handler: async (request) => {
          const b = request.body;
          const stream = await updateStream(
            ctx,
            request.caller,
            {
              streamId: b.stream_id,
              eventsRequested: b.events_requested,
              delivery: deliveryInput(b.delivery),
              description: b.description,
              iss: b.iss,
              aud: audList(b.aud),
              eventsSupported: b.events_supported,
              eventsDelivered: b.events_delivered,
            },
            mode,
          );
          return streamView(ctx, stream);
        },
      });
    }
    app.delete(
      '/ssf/streams',
      { schema: { tags: TAGS, querystring: StreamIdQuery, response: withProblems({ 204: Type.Null() }) } },
      async (request, reply) => {
        await removeStream(ctx, request.caller, request.query.stream_id);
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/ssf/status',
      { schema: { tags: TAGS, querystring: StreamIdQuery, response: withProblems({ 200: StatusView }) } },
      async (request) => statusView(await readStreamStatus(ctx, request.caller, request.query.stream_id)),
    );
    app.post(
      '/ssf/status',
      { schema: { tags: TAGS, body: StatusBody, response: withProblems({ 200: StatusView }) } },
      async (request) =>
        statusView(
          await updateStreamStatus(ctx, request.caller, {
            streamId: request.body.stream_id,
            status: request.body.status,
            reason: request.body.reason,
          }),
        ),
    );
    app.post(
      '/ssf/verify',
      { schema: { tags: TAGS, body: VerifyBody, response: withProblems({ 204: Type.Null() }) } },
      async (request, reply) => {
        await requestVerification(ctx, request.caller, {
          streamId: request.body.stream_id,
          state: request.body.state,
        });
        return reply.code(204).send(null);
      },
    );

    app.post(
      '/ssf/poll/:stream_id',
      {
        schema: { tags: TAGS, params: PollParams, body: PollBody, response: withProblems({ 200: PollView }) },
      },
      async (request, reply) => {
        // The response closing before it is sent means the receiver went away: stop waiting.
        const gone = new AbortController();
        reply.raw.once('close', () => gone.abort());
        return pollSets(
          ctx,
          request.caller,
          request.params.stream_id,
          request.body,
          AbortSignal.any([closing.signal, gone.signal]),
        );
      },
    );
  };
}

function statusView(s: { streamId: string; status: string; reason: string | null }): StatusView {
  return { stream_id: s.streamId, status: s.status, ...(s.reason === null ? {} : { reason: s.reason }) };
}
