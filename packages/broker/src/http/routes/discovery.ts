import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { DPOP_DEFAULTS } from '@tether-broker/pep';
import { AuthorizationServerMetadata, JwkSet } from '@tether-broker/protocol/api';
import { CLIENT_ASSERTION_ALGS } from '../../auth/client-assertion.js';
import type { BrokerContext } from '../../core/context.js';
import { GRANT_TYPES } from '../../oauth/issue-token.js';
import { PRIVILEGE_DETAIL_TYPE } from '../../tokens/access-token.js';

/** RFC 8414 metadata and the JWKS. */
export function discoveryRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/.well-known/oauth-authorization-server',
      { schema: { tags: ['discovery'], response: { 200: AuthorizationServerMetadata } } },
      async () => {
        const issuer = ctx.config.publicUrl;
        return {
          issuer,
          token_endpoint: `${issuer}/oauth/token`,
          device_authorization_endpoint: `${issuer}/oauth/device_authorization`,
          jwks_uri: `${issuer}/.well-known/jwks.json`,
          introspection_endpoint: `${issuer}/oauth/introspect`,
          revocation_endpoint: `${issuer}/oauth/revoke`,
          grant_types_supported: [...GRANT_TYPES],
          dpop_signing_alg_values_supported: [...DPOP_DEFAULTS.algorithms],
          // Both are called with the caller's own broker-API token (obtained with private_key_jwt).
          introspection_endpoint_auth_methods_supported: ['bearer'],
          revocation_endpoint_auth_methods_supported: ['bearer'],
          authorization_details_types_supported: [PRIVILEGE_DETAIL_TYPE],
          token_endpoint_auth_methods_supported: ['private_key_jwt'],
          token_endpoint_auth_signing_alg_values_supported: CLIENT_ASSERTION_ALGS,
          response_types_supported: [],
          service_documentation: `${issuer}/openapi.json`,
        };
      },
    );
    app.get(
      '/.well-known/jwks.json',
      { schema: { tags: ['discovery'], response: { 200: JwkSet } } },
      async (_request, reply) => {
        reply.header('cache-control', 'public, max-age=300');
        return ctx.keys.jwks() as { keys: Record<string, unknown>[] };
      },
    );
  };
}
