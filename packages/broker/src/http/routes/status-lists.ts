import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { StatusListParams } from '@tether-broker/protocol/api';
import type { BrokerContext } from '../../core/context.js';
import { publishStatusList } from '../../enforcement/status-list.js';
import { STATUS_LIST_MEDIA_TYPE } from '../../tokens/status-list-token.js';
import { withProblems } from '../schemas/common.js';

/**
 * `GET /v1/status-lists/:n`: public, as the Token Status List draft expects of the URI a token
 * names (a relying party need not be a Tether principal). Served from the signed form the
 * broker keeps until the list changes; cacheable for its `ttl`.
 */
export function statusListRoutes(ctx: BrokerContext): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/status-lists/:n',
      {
        schema: {
          tags: ['sessions'],
          params: StatusListParams,
          response: withProblems({ 200: Type.String({ description: 'a signed statuslist+jwt' }) }),
        },
      },
      async (request, reply) => {
        const jwt = await publishStatusList(ctx, request.params.n);
        return reply
          .type(STATUS_LIST_MEDIA_TYPE)
          .header('cache-control', `public, max-age=${ctx.config.statusListTtlSeconds}`)
          .send(jwt);
      },
    );
  };
}
