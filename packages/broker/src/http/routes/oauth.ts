import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { BrokerContext } from '../../services/context.js';
import { issueToken } from '../../services/issue-token.js';
import { OAuthErrorBody } from '../schemas/common.js';

const TokenForm = Type.Object(
  {
    grant_type: Type.String({ minLength: 1, maxLength: 128 }),
    client_assertion_type: Type.Optional(Type.String({ maxLength: 256 })),
    client_assertion: Type.Optional(Type.String({ maxLength: 8192 })),
    client_id: Type.Optional(Type.String({ maxLength: 128 })),
    scope: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);

const TokenResponse = Type.Object({
  access_token: Type.String(),
  token_type: Type.String(),
  expires_in: Type.Integer(),
  scope: Type.String(),
});

/** `POST /oauth/token`, form-encoded as RFC 6749 requires; errors in RFC 6749 JSON. */
export function oauthRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/oauth/token',
      {
        schema: {
          tags: ['oauth'],
          consumes: ['application/x-www-form-urlencoded'],
          body: TokenForm,
          response: { 200: TokenResponse, 400: OAuthErrorBody, 401: OAuthErrorBody, 500: OAuthErrorBody },
        },
      },
      async (request, reply) => {
        const answer = await issueToken(ctx, request.body);
        return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(answer);
      },
    );
  };
}
