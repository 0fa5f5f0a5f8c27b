import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { DpopError } from '@tether-broker/pep';
import { TetherError } from '@tether-broker/protocol';
import {
  ActivationView,
  EndSessionBody,
  ExtendSessionBody,
  IdParams,
  RequestView,
  RevokedView,
  RevokeSessionsBody,
  SessionList,
  SessionParams,
  SessionQuery,
  SessionView,
} from '@tether-broker/protocol/api';
import { awaitMinted, collectCredentials } from '../../connectors/credentials.js';
import type { BrokerContext, Caller } from '../../core/context.js';
import { endSession, revokeSessions } from '../../core/end-session.js';
import type { Session } from '../../domain/session.js';
import { activateSession } from '../../sessions/activate-session.js';
import { requestExtension } from '../../sessions/extend-session.js';
import { findSessions, getSession } from '../../sessions/query-sessions.js';
import { listSessionJobs } from '../../store/repositories/connectors.js';
import { emptyBodyAsObject, withProblems } from '../schemas/common.js';
import { requestView, sessionView } from '../views.js';
import { credentialView } from './connectors.js';

/** A refused DPoP proof at the broker API: 401 with the RFC 9449 code in our problem format. */
function asProblem(err: unknown): never {
  if (err instanceof DpopError) throw new TetherError(err.code, err.message);
  throw err;
}

/** How long an activation waits for its downstream credentials before answering without them. */
const ACTIVATION_CREDENTIAL_WAIT_MS = 5000;

/**
 * The credentials of a session just activated, if its privilege names connectors: minted after
 * the activation committed, waited for briefly, handed over in the answer (and so collected).
 * What is not minted in time is collected later; the activation stands either way. Without
 * connectors, one indexed read and nothing more (no transaction on the activation path).
 */
async function credentialsForActivation(ctx: BrokerContext, caller: Caller, session: Session) {
  if (!(await listSessionJobs(ctx.store, session.id)).some((j) => j.action === 'mint')) return {};
  await awaitMinted(ctx, session.id, ACTIVATION_CREDENTIAL_WAIT_MS);
  // The activation has committed: its tokens are answered whatever happens here (the session
  // ended meanwhile, say); the credentials are the only thing that may be missing.
  // The activation's own proof was signed by the session key.
  const collected = await collectCredentials(ctx, caller, session.id, { jkt: session.jkt }).catch(
    () => undefined,
  );
  if (!collected) return { credentials: [], credentials_pending: [] };
  return { credentials: collected.credentials.map(credentialView), credentials_pending: collected.pending };
}

export function sessionRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  const issuer = ctx.config.publicUrl;
  return async (app) => {
    app.post(
      '/requests/:id/activate',
      {
        preValidation: emptyBodyAsObject,
        schema: {
          tags: ['sessions'],
          params: IdParams,
          body: Type.Object({}, { additionalProperties: false }),
          response: withProblems({ 201: ActivationView }),
        },
      },
      async (request, reply) => {
        const tokens = await activateSession(
          ctx,
          request.caller,
          request.params.id,
          request.headers.dpop,
        ).catch(asProblem);
        const credentials = await credentialsForActivation(ctx, request.caller, tokens.session);
        return reply
          .code(201)
          .header('cache-control', 'no-store')
          .send({
            session: sessionView(tokens.session, issuer),
            access_token: tokens.accessToken,
            token_type: 'DPoP' as const,
            expires_in: tokens.expiresIn,
            refresh_token: tokens.refreshToken,
            ...credentials,
            ...(tokens.recording === undefined
              ? {}
              : {
                  recording: {
                    mode: tokens.recording,
                    upload: `/v1/sessions/${tokens.session.id}/recording`,
                    lapse_seconds: ctx.config.limits.recordingLapseSeconds,
                    max_chunk_bytes: ctx.config.limits.recordingChunkBytes,
                  },
                }),
          });
      },
    );
    app.get(
      '/sessions',
      {
        schema: {
          tags: ['sessions'],
          querystring: SessionQuery,
          response: withProblems({ 200: SessionList }),
        },
      },
      async (request) => ({
        sessions: (await findSessions(ctx, request.caller, request.query)).map((s) => sessionView(s, issuer)),
      }),
    );
    app.get(
      '/sessions/:id',
      { schema: { tags: ['sessions'], params: SessionParams, response: withProblems({ 200: SessionView }) } },
      async (request) => sessionView(await getSession(ctx, request.caller, request.params.id), issuer),
    );
    app.post(
      '/sessions/:id/end',
      {
        preValidation: emptyBodyAsObject,
        schema: {
          tags: ['sessions'],
          params: SessionParams,
          body: EndSessionBody,
          response: withProblems({ 200: SessionView }),
        },
      },
      async (request) =>
        sessionView(
          await endSession(
            ctx,
            request.caller,
            request.params.id,
            request.body.reason ?? 'completed',
            request.body.note ?? '',
          ),
          issuer,
        ),
    );
    app.post(
      '/sessions/:id/extend',
      {
        schema: {
          tags: ['sessions'],
          description:
            "The session's holder asks for more time: an extension request, reviewed under the privilege's approval rule and applied to the session once approved",
          params: SessionParams,
          body: ExtendSessionBody,
          response: withProblems({ 201: RequestView }),
        },
      },
      async (request, reply) => {
        const { by, justification } = request.body;
        const created = await requestExtension(ctx, request.caller, request.params.id, {
          bySeconds: by,
          justification,
        });
        return reply.code(201).send(requestView(created, []));
      },
    );
    app.post(
      '/sessions/revoke',
      {
        schema: {
          tags: ['sessions'],
          body: RevokeSessionsBody,
          response: withProblems({ 200: RevokedView }),
        },
      },
      async (request) => {
        const { note, ...selector } = request.body;
        return {
          revoked: (await revokeSessions(ctx, request.caller, selector, note ?? '')).map((s) => s.id),
        };
      },
    );
  };
}
