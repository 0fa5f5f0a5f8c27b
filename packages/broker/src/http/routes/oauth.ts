import formbody from '@fastify/formbody';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { DPOP_DEFAULTS } from '@tether-broker/pep';
import { TetherError } from '@tether-broker/protocol';
import { IntrospectionResponse, TokenResponse } from '@tether-broker/protocol/api';
import type { FastifyRequest } from 'fastify';
import { authenticateCaller } from '../../auth/authenticate-caller.js';
import { OAuthError } from '../../auth/oauth-error.js';
import { startDeviceLogin } from '../../console/device-login.js';
import type { BrokerContext } from '../../core/context.js';
import { introspect } from '../../oauth/introspect.js';
import { issueToken } from '../../oauth/issue-token.js';
import { revokeToken } from '../../oauth/revoke-token.js';
import { OAuthErrorBody } from '../schemas/common.js';

const TokenForm = Type.Object(
  {
    grant_type: Type.String({ minLength: 1, maxLength: 128 }),
    refresh_token: Type.Optional(Type.String({ maxLength: 512 })),
    client_assertion_type: Type.Optional(Type.String({ maxLength: 256 })),
    client_assertion: Type.Optional(Type.String({ maxLength: 8192 })),
    client_id: Type.Optional(Type.String({ maxLength: 128 })),
    scope: Type.Optional(Type.String({ maxLength: 1024 })),
    // RFC 8693 token exchange.
    subject_token: Type.Optional(Type.String({ maxLength: 16384 })),
    subject_token_type: Type.Optional(Type.String({ maxLength: 256 })),
    requested_token_type: Type.Optional(Type.String({ maxLength: 256 })),
    audience: Type.Optional(Type.String({ maxLength: 1024 })),
    resource: Type.Optional(Type.String({ maxLength: 1024 })),
    privilege: Type.Optional(Type.String({ maxLength: 128 })),
    duration: Type.Optional(Type.Integer({ minimum: 60, maximum: 604800, description: 'seconds' })),
    // RFC 8693 delegation: a sub-session of the subject token's session for the actor.
    actor_token: Type.Optional(Type.String({ maxLength: 8192 })),
    actor_token_type: Type.Optional(Type.String({ maxLength: 256 })),
    authorization_details: Type.Optional(Type.String({ maxLength: 16384, description: 'RFC 9396, JSON' })),
    idle_timeout: Type.Optional(Type.Integer({ minimum: 60, maximum: 604800, description: 'seconds' })),
    // RFC 8628: the device code `tether login` polls with.
    device_code: Type.Optional(Type.String({ maxLength: 128 })),
    call_budget: Type.Optional(
      Type.String({ maxLength: 4096, description: 'JSON object: allowed calls per delegated action' }),
    ),
  },
  // RFC 6749 §3.2: the authorization server MUST ignore unrecognized request parameters.
  { additionalProperties: true },
);

const TokenOnlyForm = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 8192 }),
    token_type_hint: Type.Optional(Type.String({ maxLength: 64 })),
  },
  // RFC 7662 §2.1 / RFC 7009 §2.1 allow extension parameters: ignore, do not refuse.
  { additionalProperties: true },
);

/** The protected-resource caller of introspection and revocation: a principal's broker-API token. */
async function authenticateOAuthCaller(ctx: BrokerContext, request: FastifyRequest) {
  try {
    return await authenticateCaller(ctx, {
      authorization: request.headers.authorization,
      dpop: request.headers.dpop,
      method: request.method,
      url: request.url,
    });
  } catch (err) {
    if (err instanceof TetherError) {
      // RFC 7662 §2.3 / RFC 7009 §2.1: the caller authorises with a broker-API token, so a failure
      // is RFC 6750's `invalid_token`, challenged in the scheme the caller used (RFC 9449 §7.1 for DPoP).
      const dpop = /^dpop\s/i.test(request.headers.authorization ?? '') || err.code === 'invalid_dpop_proof';
      const error =
        err.code === 'invalid_dpop_proof' || err.code === 'use_dpop_nonce'
          ? err.code
          : ('invalid_token' as const);
      throw new OAuthError(error, err.detail, {
        challenge: dpop
          ? `DPoP error="${error}", algs="${DPOP_DEFAULTS.algorithms.join(' ')}"`
          : request.headers.authorization === undefined
            ? `Bearer realm="tether", DPoP algs="${DPOP_DEFAULTS.algorithms.join(' ')}"`
            : 'Bearer error="invalid_token"',
      });
    }
    throw err;
  }
}

/** The caller may not use the endpoint (RFC 7662 §2.3: 401 with RFC 6750's `insufficient_scope`). */
function insufficientScope(err: unknown): never {
  if (err instanceof TetherError && err.code === 'forbidden')
    throw new OAuthError('insufficient_scope', err.detail, {
      challenge: 'Bearer error="insufficient_scope"',
    });
  throw err;
}

/** `POST /oauth/token`, form-encoded as RFC 6749 requires; errors in RFC 6749 JSON. */
export function oauthRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    // Form bodies are for the OAuth endpoints only (RFC 6749); every other route takes JSON.
    await app.register(formbody, { bodyLimit: ctx.config.bodyLimitBytes });
    // RFC 6749 §4.4.2: a form, and only a form. A JSON body is refused before it is read.
    app.addHook('onRequest', async (request) => {
      const type = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
      if (request.method === 'POST' && type !== 'application/x-www-form-urlencoded') {
        throw new OAuthError('invalid_request', 'send the parameters as application/x-www-form-urlencoded');
      }
    });
    app.post(
      '/oauth/token',
      {
        schema: {
          tags: ['oauth'],
          consumes: ['application/x-www-form-urlencoded'],
          body: TokenForm,
          response: {
            200: TokenResponse,
            400: OAuthErrorBody,
            401: OAuthErrorBody,
            500: OAuthErrorBody,
            503: OAuthErrorBody,
          },
        },
      },
      async (request, reply) => {
        const answer = await issueToken(ctx, request.body, request.headers.dpop);
        return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(answer);
      },
    );
    app.post(
      '/oauth/device_authorization',
      {
        schema: {
          tags: ['oauth'],
          summary: 'Device authorization (RFC 8628) for tether login: a code to confirm in the console',
          consumes: ['application/x-www-form-urlencoded'],
          body: Type.Object(
            {
              tenant: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
              client_id: Type.Optional(Type.String({ maxLength: 128 })),
              scope: Type.Optional(Type.String({ maxLength: 1024 })),
            },
            { additionalProperties: true },
          ),
          response: {
            200: Type.Object({
              device_code: Type.String(),
              user_code: Type.String(),
              verification_uri: Type.String(),
              verification_uri_complete: Type.String(),
              expires_in: Type.Integer(),
              interval: Type.Integer(),
            }),
            400: OAuthErrorBody,
            500: OAuthErrorBody,
            503: OAuthErrorBody,
          },
        },
      },
      async (request, reply) => {
        const answer = await startDeviceLogin(ctx, request.body, request.headers.dpop);
        return reply.header('cache-control', 'no-store').send(answer);
      },
    );
    app.post(
      '/oauth/introspect',
      {
        schema: {
          tags: ['oauth'],
          consumes: ['application/x-www-form-urlencoded'],
          body: TokenOnlyForm,
          response: {
            200: IntrospectionResponse,
            400: OAuthErrorBody,
            401: OAuthErrorBody,
            403: OAuthErrorBody,
            500: OAuthErrorBody,
            503: OAuthErrorBody,
          },
        },
      },
      async (request, reply) => {
        const caller = await authenticateOAuthCaller(ctx, request);
        const answer = await introspect(ctx, caller, request.body.token).catch(insufficientScope);
        return reply.header('cache-control', 'no-store').send(answer);
      },
    );
    app.post(
      '/oauth/revoke',
      {
        schema: {
          tags: ['oauth'],
          consumes: ['application/x-www-form-urlencoded'],
          body: TokenOnlyForm,
          response: {
            200: Type.Object({}),
            400: OAuthErrorBody,
            401: OAuthErrorBody,
            500: OAuthErrorBody,
            503: OAuthErrorBody,
          },
        },
      },
      async (request) => {
        const caller = await authenticateOAuthCaller(ctx, request);
        await revokeToken(ctx, caller, request.body.token).catch(insufficientScope);
        return {};
      },
    );
  };
}
