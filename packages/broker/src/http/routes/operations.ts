import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Registry } from 'prom-client';
import type { BrokerContext } from '../../services/context.js';
import { storeIsReady } from '../../store/database.js';

/** Health, readiness and metrics: unauthenticated, and they reveal nothing about tenants. */
export function operationsRoutes(ctx: BrokerContext, metrics: Registry): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/healthz',
      { schema: { tags: ['operations'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
      async () => ({ status: 'ok' as const }),
    );
    app.get(
      '/readyz',
      {
        schema: {
          tags: ['operations'],
          response: {
            200: Type.Object({ status: Type.String(), store: Type.String() }),
            503: Type.Object({ status: Type.String(), store: Type.String() }),
          },
        },
      },
      async (_request, reply) => {
        const ready = await storeIsReady(ctx.store);
        return reply
          .code(ready ? 200 : 503)
          .send({ status: ready ? 'ready' : 'not_ready', store: ctx.store.dialect });
      },
    );
    app.get('/metrics', { schema: { tags: ['operations'], hide: true } }, async (_request, reply) => {
      return reply.type(metrics.contentType).send(await metrics.metrics());
    });
  };
}
