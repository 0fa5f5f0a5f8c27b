import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TetherError } from '@tether-broker/protocol';
import { HealthView, ReadinessView } from '@tether-broker/protocol/api';
import type { FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { BrokerContext } from '../../core/context.js';
import { storeReadiness } from '../../store/database.js';
import { STORE_RETRY_AFTER_SECONDS } from '../error-handler.js';

/**
 * Health, readiness and metrics: they reveal nothing about tenants. Health and readiness are
 * open; metrics (which show the broker's traffic) need the `metricsToken` when one is set, and
 * otherwise answer only callers on a loopback address.
 */
export function operationsRoutes(ctx: BrokerContext, metrics: Registry): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/healthz', { schema: { tags: ['operations'], response: { 200: HealthView } } }, async () => ({
      status: 'ok' as const,
    }));
    app.get(
      '/readyz',
      {
        schema: {
          tags: ['operations'],
          response: {
            200: ReadinessView,
            503: ReadinessView,
          },
        },
      },
      async (_request, reply) => {
        // A read, a durable write and the schema, answered within a second whatever the store does.
        const { readiness, cause } = await storeReadiness(ctx.store, { now: () => ctx.clock.now() });
        if (readiness !== 'ready') {
          ctx.health.readinessFailed(readiness, cause);
          reply.header('retry-after', String(STORE_RETRY_AFTER_SECONDS));
        }
        return reply.code(readiness === 'ready' ? 200 : 503).send({
          status: readiness === 'ready' ? 'ready' : 'not_ready',
          store: ctx.store.dialect,
          readiness,
        });
      },
    );
    app.get('/metrics', { schema: { tags: ['operations'], hide: true } }, async (request, reply) => {
      admitScraper(ctx, request);
      return reply.type(metrics.contentType).send(await metrics.metrics());
    });
  };
}

const BEARER = /^Bearer[ ]+(\S+)$/i;

/** Lets a scraper in, or throws: the configured token, compared in constant time, or a loopback caller. */
function admitScraper(ctx: BrokerContext, request: FastifyRequest): void {
  const expected = ctx.config.metricsToken;
  if (expected === undefined) {
    // The socket's address: no header a remote caller could set says it is local.
    if (isLoopback(request.socket.remoteAddress)) return;
    throw new TetherError(
      'forbidden',
      'metrics are served to loopback callers only unless metricsToken is set',
    );
  }
  const presented = BEARER.exec(request.headers.authorization?.trim() ?? '')?.[1];
  if (presented === undefined || !sameSecret(presented, expected))
    throw new TetherError('unauthenticated', 'send Authorization: Bearer <metrics token>');
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || /^(::ffff:)?127\./.test(address);
}

/** Equal secrets, in time independent of where they differ and of their lengths (both hashed first). */
function sameSecret(presented: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
