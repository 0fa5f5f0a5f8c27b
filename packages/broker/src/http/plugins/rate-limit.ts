import { AsyncResource } from 'node:async_hooks';
import type { ServerOptions } from 'node:http';
import rateLimit, { type FastifyRateLimitStore, normalizeIP } from '@fastify/rate-limit';
import { TetherError } from '@tether-broker/protocol';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { BrokerConfig } from '../../config/config.js';
import { flushRefusals } from '../../core/audit-refusal.js';
import type { BrokerContext } from '../../core/context.js';
import { runAsSource } from '../../core/request-source.js';
import type { Clock } from '../../domain/clock.js';

/** The classes of unauthenticated routes, each limited per source address. */
export type SourceClass = 'oauth' | 'deliveries' | 'public';

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

export interface Limits {
  /** A plugin that registers `plugins` behind the per-source limit of `kind`. */
  scope(kind: SourceClass, ...plugins: FastifyPluginAsync[]): FastifyPluginAsync;
  /** Adds the per-source limit on failed authentications; call before the authentication hook. */
  beforeAuthentication(scope: FastifyInstance): void;
  /** Adds the per-principal limit; call after the authentication hook. */
  afterAuthentication(scope: FastifyInstance): void;
}

/**
 * The Node server's timeouts, as Fastify options: slow headers or a slow body are answered 408
 * and closed (`headersTimeout`, `requestTimeout`, checked every `connectionsCheckingInterval`),
 * idle keep-alive connections closed, silent connections cut (`connectionTimeout`).
 */
export function serverTimeouts(config: BrokerConfig): {
  connectionTimeout: number;
  keepAliveTimeout: number;
  requestTimeout: number;
  http: ServerOptions;
} {
  const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, idleTimeoutMs } = config.limits;
  return {
    connectionTimeout: idleTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    requestTimeout: requestTimeoutMs,
    http: {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      keepAliveTimeout: keepAliveTimeoutMs,
      // Node checks the two timeouts only this often (30 s by default): a fraction of the shorter one.
      connectionsCheckingInterval: Math.max(5, Math.min(1000, Math.floor(headersTimeoutMs / 4))),
    },
  };
}

/** The client address the limits count against: the socket's, never a header a client can set. */
export function sourceOf(request: FastifyRequest): string {
  return normalizeIP(request.ip ?? 'unknown');
}

/**
 * Installs the broker's limits on `app` (the root instance, before any route): the rate-limit
 * plugin on the broker's clock, the request-source context used by the refusal records, the
 * flush of counted refusals at close, the `/oauth/*` body limit, and `Connection: close` on a
 * refusal sent before the body was read (so a 401 or 429 does not go on to read 200 MB).
 */
export async function installLimits(app: FastifyInstance, ctx: BrokerContext): Promise<Limits> {
  const { limits } = ctx.config;
  const windowMs = limits.windowSeconds * 1000;
  await app.register(rateLimit, {
    global: false,
    timeWindow: windowMs,
    store: clockedStore(ctx.clock),
    keyGenerator: sourceOf,
  });

  // The source rides along with the request through the use cases (the refusal records count
  // by it). Re-entered after the body is read: body parsing runs in the socket's context.
  const resource = Symbol('request source');
  type WithResource = FastifyRequest & { [resource]?: AsyncResource };
  app.addHook('onRequest', (request, _reply, done) => {
    runAsSource(sourceOf(request), () => {
      const scope = new AsyncResource('tether-request-source');
      (request as WithResource)[resource] = scope;
      scope.runInAsyncScope(done, request.raw);
    });
  });
  app.addHook('preValidation', (request, _reply, done) => {
    const scope = (request as WithResource)[resource];
    if (scope) scope.runInAsyncScope(done, request.raw);
    else done();
  });
  app.addHook('onSend', async (request, reply) => {
    if (reply.statusCode >= 400 && bodyUnread(request)) reply.header('connection', 'close');
  });
  app.addHook('onClose', async () => flushRefusals(ctx));

  const perSource: Record<SourceClass, Limiter> = {
    oauth: app.createRateLimit({ max: limits.oauthPerSource, keyGenerator: sourceOf }),
    deliveries: app.createRateLimit({ max: limits.deliveriesPerSource, keyGenerator: sourceOf }),
    public: app.createRateLimit({ max: limits.publicPerSource, keyGenerator: sourceOf }),
  };
  const authFailures = app.createRateLimit({ max: limits.authFailuresPerSource, keyGenerator: sourceOf });
  // Tenant and principal: one tenant's traffic never spends another tenant's budget.
  const perPrincipal = app.createRateLimit({
    max: limits.perPrincipal,
    keyGenerator: (request) => `${request.caller.tenant.id}/${request.caller.principal.id}`,
  });

  return {
    scope(kind, ...plugins) {
      return async (scope) => {
        if (kind === 'oauth') {
          scope.addHook('onRoute', (route) => {
            route.bodyLimit ??= limits.oauthBodyLimitBytes;
          });
        }
        scope.addHook('onRequest', async (request, reply) => {
          const limit = await perSource[kind](request);
          if (limit.isAllowed || !limit.isExceeded) return;
          return refuse(
            request,
            reply,
            limit.ttlInSeconds,
            `more than ${limit.max} requests from this address`,
          );
        });
        for (const plugin of plugins) await scope.register(plugin);
      };
    },
    beforeAuthentication(scope) {
      scope.addHook('onRequest', async (request, reply) => {
        const seen = await authFailures(request, { increment: false });
        if (seen.isAllowed || seen.remaining > 0) return;
        return refuse(
          request,
          reply,
          seen.ttlInSeconds,
          `more than ${seen.max} failed authentications from this address`,
        );
      });
      // Counted once answered: only a 401 that is not the DPoP nonce exchange (RFC 9449 §8), which
      // is how a well-behaved client learns the nonce.
      scope.addHook('onResponse', async (request, reply) => {
        if (reply.statusCode !== 401) return;
        if (String(reply.getHeader('www-authenticate') ?? '').includes('use_dpop_nonce')) return;
        await authFailures(request);
      });
    },
    afterAuthentication(scope) {
      scope.addHook('onRequest', async (request, reply) => {
        const limit = await perPrincipal(request);
        if (limit.isAllowed || !limit.isExceeded) return;
        return refuse(request, reply, limit.ttlInSeconds, `more than ${limit.max} calls by this principal`);
      });
    },
  };
}

/**
 * Answers 429 with `Retry-After`. At `/oauth/*` in RFC 6749 §5.2 form with `slow_down`: the error
 * code registered (RFC 8628 §3.5) for a token endpoint asking its client to slow down, which
 * OAuth clients already treat as "wait, then retry"; elsewhere as problem+json `rate_limited`.
 */
function refuse(
  request: FastifyRequest,
  reply: FastifyReply,
  retryAfter: number,
  detail: string,
): FastifyReply {
  const seconds = Math.max(1, retryAfter);
  reply.header('retry-after', String(seconds));
  request.log.info({ source: sourceOf(request), route: request.routeOptions.url }, 'rate limited');
  if (request.url.startsWith('/oauth/')) {
    return reply
      .code(429)
      .header('cache-control', 'no-store')
      .type('application/json')
      .send({ error: 'slow_down', error_description: `${detail}; retry after ${seconds} s` });
  }
  throw new TetherError('rate_limited', `${detail}; retry after ${seconds} s`);
}

/** Whether the request announced a body that has not been read (all of it) yet. */
function bodyUnread(request: FastifyRequest): boolean {
  const announced =
    request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
  return announced && !request.raw.readableEnded;
}

/** Fixed windows on the broker's clock (tests move it), one map per limiter, bounded in size. */
function clockedStore(clock: Clock) {
  const MAX_KEYS = 100_000;
  class ClockedStore implements FastifyRateLimitStore {
    private readonly counts = new Map<string, { current: number; start: number }>();

    incr(
      key: string,
      cb: (err: Error | null, res?: { current: number; ttl: number }) => void,
      timeWindow: number,
    ) {
      const now = clock.now();
      let entry = this.counts.get(key);
      if (!entry || entry.start + timeWindow <= now) {
        this.counts.delete(key);
        // The oldest window goes first; Map keeps insertion order.
        if (this.counts.size >= MAX_KEYS) this.counts.delete(this.counts.keys().next().value as string);
        entry = { current: 0, start: now };
        this.counts.set(key, entry);
      }
      entry.current += 1;
      cb(null, { current: entry.current, ttl: entry.start + timeWindow - now });
    }

    read(
      key: string,
      cb: (err: Error | null, res?: { current: number; ttl: number }) => void,
      timeWindow: number,
    ) {
      const now = clock.now();
      const entry = this.counts.get(key);
      if (!entry || entry.start + timeWindow <= now) cb(null, { current: 0, ttl: 0 });
      else cb(null, { current: entry.current, ttl: entry.start + timeWindow - now });
    }

    child(): FastifyRateLimitStore {
      return new ClockedStore();
    }
  }
  return ClockedStore;
}
