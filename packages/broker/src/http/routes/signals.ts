import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { isTetherError } from '@tether-broker/protocol';
import {
  Deleted,
  NewTransmitterBody,
  RefParams,
  TransmitterList,
  TransmitterView,
} from '@tether-broker/protocol/api';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { BrokerContext } from '../../core/context.js';
import { SIGNAL_LIMITS, type SignalTransmitter } from '../../domain/transmitter.js';
import { receiveSignal } from '../../signals/receive-signal.js';
import { SET_MEDIA_TYPE, SetRefused } from '../../signals/set-verify.js';
import {
  createTransmitter,
  findTransmitters,
  getTransmitter,
  removeTransmitter,
} from '../../signals/signal-transmitters.js';
import { withProblems } from '../schemas/common.js';
import { SetBody, SetErrorBody } from '../schemas/signals.js';

const SIGNALS_PATH = '/v1/signals';

function transmitterView(ctx: BrokerContext, t: SignalTransmitter): TransmitterView {
  return {
    id: t.id,
    name: t.name,
    issuer: t.issuer,
    audience: t.audience,
    jwks_uri: t.jwksUri,
    jwks: t.jwks,
    push_url: `${ctx.config.publicUrl}${SIGNALS_PATH}`,
    created_by: t.createdBy,
    created_at: new Date(t.createdAt).toISOString(),
  };
}

/** `/v1/signal-transmitters`: the CAEP transmitters whose SETs are accepted. Admins change; auditors may read. */
export function signalTransmitterRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/signal-transmitters',
      { schema: { tags: ['signals'], response: withProblems({ 200: TransmitterList }) } },
      async (request) => ({
        transmitters: (await findTransmitters(ctx, request.caller)).map((t) => transmitterView(ctx, t)),
      }),
    );
    app.post(
      '/signal-transmitters',
      {
        schema: {
          tags: ['signals'],
          body: NewTransmitterBody,
          response: withProblems({ 201: TransmitterView }),
        },
      },
      async (request, reply) => {
        const b = request.body;
        const created = await createTransmitter(ctx, request.caller, {
          name: b.name,
          issuer: b.issuer,
          audience: b.audience,
          jwksUri: b.jwks_uri,
          jwks: b.jwks,
        });
        return reply.code(201).send(transmitterView(ctx, created));
      },
    );
    app.get(
      '/signal-transmitters/:ref',
      { schema: { tags: ['signals'], params: RefParams, response: withProblems({ 200: TransmitterView }) } },
      async (request) => transmitterView(ctx, await getTransmitter(ctx, request.caller, request.params.ref)),
    );
    app.delete(
      '/signal-transmitters/:ref',
      { schema: { tags: ['signals'], params: RefParams, response: withProblems({ 200: Deleted }) } },
      async (request) => {
        await removeTransmitter(ctx, request.caller, request.params.ref);
        return { deleted: true };
      },
    );
  };
}

/**
 * `POST /v1/signals`: SET push delivery (RFC 8935). No token: the SET's signature by a
 * registered transmitter is the authentication, and its `iss` and `aud` name the tenant.
 * Answers 202 with no body, or 400 with RFC 8935's `{err, description}` — every failure of
 * this route, framework ones included, is answered in that shape (never problem+json).
 */
export function signalDeliveryRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(
      SET_MEDIA_TYPE,
      { parseAs: 'string', bodyLimit: SIGNAL_LIMITS.maxBodyBytes },
      (_request, body, done) => done(null, body),
    );
    app.setErrorHandler(answerSetError);
    app.post(
      '/signals',
      {
        schema: {
          tags: ['signals'],
          summary: 'a CAEP Security Event Token pushed by a registered transmitter (RFC 8935)',
          consumes: [SET_MEDIA_TYPE],
          body: SetBody,
          response: {
            202: Type.String({ maxLength: 0, description: 'accepted; no body' }),
            400: SetErrorBody,
            500: SetErrorBody,
          },
        },
      },
      async (request, reply) => {
        await receiveSignal(ctx, request.body);
        // RFC 8935 §2.2: 202 and nothing else; a string is sent as is, not serialized to JSON.
        return reply.code(202).header('cache-control', 'no-store').send('');
      },
    );
  };
}

/** Every failure as RFC 8935 §2.4 has it; the cause stays in the log. */
function answerSetError(err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) {
  const refused = asRefusal(err);
  if (refused) {
    request.log.info({ set_error: refused.err, reason: refused.description }, 'SET refused');
    return reply
      .code(400)
      .header('cache-control', 'no-store')
      .type('application/json')
      .send(refused.toBody());
  }
  request.log.error({ err }, 'unhandled error on SET delivery');
  return reply
    .code(500)
    .header('cache-control', 'no-store')
    .type('application/json')
    .send({ err: 'server_error', description: 'internal error; the request id is in the broker log' });
}

function asRefusal(err: FastifyError | Error): SetRefused | undefined {
  if (err instanceof SetRefused) return err;
  const fastifyError = err as FastifyError;
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new SetRefused('invalid_request', `a SET is at most ${SIGNAL_LIMITS.maxBodyBytes} bytes`);
  if (fastifyError.code?.startsWith('FST_ERR_CTP_'))
    return new SetRefused('invalid_request', `send one SET as ${SET_MEDIA_TYPE}`);
  if (fastifyError.validation)
    return new SetRefused('invalid_request', `send one SET as ${SET_MEDIA_TYPE}, and no query`);
  if (isTetherError(err) && err.status < 500) return new SetRefused('invalid_request', err.detail);
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500)
    return new SetRefused('invalid_request', 'the request could not be processed');
  return undefined;
}
