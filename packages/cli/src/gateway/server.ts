import type { IncomingHttpHeaders } from 'node:http';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import replyFrom from '@fastify/reply-from';
import {
  createEnforcer,
  type Decision,
  denialResponse,
  type Enforcer,
  type EnforcerOptions,
  silentLogger,
} from '@tether-broker/pep';
import { type ErrorCode, PROBLEM_MEDIA_TYPE, toProblem } from '@tether-broker/protocol';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { type GatewayConfig, gatewayHttpsOptions } from './config.js';
import {
  applyRequestTimeouts,
  cappedBody,
  declaredBodyTooLarge,
  type ForwardedFor,
  forwardedFor,
  forwardingHeaders,
  hasBody,
  isSpoofableHeader,
  requestLogger,
  withoutQueries,
} from './hardening.js';
import { type GatewayMetrics, gatewayMetrics } from './metrics.js';
import { matchRoute } from './routes.js';

/** What a test or an embedding process may set beside the configuration. */
export interface GatewayOptions {
  /** Epoch milliseconds, for the PEP. Default `Date.now`. */
  now?: () => number;
  /** Where the gateway logs (a pino logger); default: nowhere. */
  logger?: FastifyBaseLogger;
  /** Decision reporting to the broker; default on. */
  decisions?: EnforcerOptions['decisions'];
  /** Reconnect delays of the revocation stream. */
  reconnect?: EnforcerOptions['reconnect'];
  /** DPoP nonces; default required, window from the configuration (`dpop_nonce_window`). */
  dpopNonce?: EnforcerOptions['dpopNonce'];
}

export interface Gateway {
  app: FastifyInstance;
  enforcer: Enforcer;
  metrics: GatewayMetrics;
  /** Starts following the revocation log and listening; answers the listening address. */
  listen(): Promise<string>;
  /** Stops accepting requests, lets the ones in flight finish, and stops the PEP. */
  close(): Promise<void>;
}

/** Headers that describe the connection to the gateway, not the request: never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
  // Node answers `Expect: 100-continue` itself; the upstream gets a plain request.
  'expect',
]);
/** Headers the gateway sets from the decision; anything a client sends under this prefix is dropped. */
const TETHER_PREFIX = 'x-tether-';
const METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'] as const;

/**
 * The headers sent upstream: the client's, less its credentials (`Authorization`, `DPoP`: the
 * token and proof are for the gateway, and a proof must not be replayable elsewhere), less
 * hop-by-hop headers and anything under `x-tether-` (a client must not speak for the gateway),
 * less method-override, URL-rewrite and forwarding headers (the upstream must act on the method
 * and path that were decided on, and learn who called from the gateway only), plus who the
 * gateway allowed: principal, session, ticket and privilege. Values are percent-encoded (ids and
 * usual ticket references are unchanged). With `forwarded`, the gateway's own `X-Forwarded-*`
 * and `Forwarded` headers.
 */
export function upstreamHeaders(
  headers: IncomingHttpHeaders,
  decision: Decision,
  forwarded?: ForwardedFor,
): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  // RFC 9110 §7.6.1: the headers Connection names are hop-by-hop too.
  const listed =
    headers.connection === undefined
      ? undefined
      : String(headers.connection)
          .split(',')
          .map((name) => name.trim().toLowerCase());
  for (const name of Object.keys(headers)) {
    const key = name.toLowerCase();
    if (key === 'authorization' || key === 'dpop' || key.startsWith(TETHER_PREFIX)) continue;
    if (HOP_BY_HOP.has(key) || listed?.includes(key) || isSpoofableHeader(key)) continue;
    out[key] = headers[name];
  }
  if (forwarded) Object.assign(out, forwardingHeaders(forwarded));
  if (decision.principal !== undefined) out['x-tether-principal'] = encodeURIComponent(decision.principal);
  if (decision.session !== undefined) out['x-tether-session'] = encodeURIComponent(decision.session);
  if (decision.ticket !== undefined) out['x-tether-ticket'] = encodeURIComponent(decision.ticket);
  const privilege = decision.entitlement?.privilege;
  if (privilege !== undefined) out['x-tether-privilege'] = encodeURIComponent(privilege);
  return out;
}

function sendProblem(reply: FastifyReply, code: ErrorCode, detail: string): FastifyReply {
  const problem = toProblem(code, detail, { instance: reply.request.id });
  return reply
    .code(problem.status)
    .headers({ 'content-type': PROBLEM_MEDIA_TYPE, 'cache-control': 'no-store' })
    .send(JSON.stringify(problem));
}

/** The PEP the gateway decides with: its tenant is its identity's, `htu` is checked against `public_url`. */
function gatewayEnforcer(config: GatewayConfig, options: GatewayOptions): Enforcer {
  return createEnforcer({
    broker: config.broker,
    ...(config.issuer ? { issuer: config.issuer } : {}),
    audience: config.audience,
    tenant: config.identity.tenant,
    publicBaseUrl: config.publicUrl,
    identity: { principal: config.identity.principal, key: config.identity.key },
    stalenessBudgetMs: config.stalenessBudgetMs,
    // A proof is good at this gateway process only: not at a second gateway, not after a restart.
    dpopNonce: options.dpopNonce ?? { required: true, windowSeconds: config.dpopNonceWindowMs / 1000 },
    now: options.now ?? Date.now,
    log: options.logger ? options.logger.child({ part: 'pep' }) : silentLogger,
    ...(options.decisions === undefined ? {} : { decisions: options.decisions }),
    // Retried at least once a second (and once per budget when that is shorter), so that the
    // gateway serves again within about a second of the broker coming back.
    reconnect: options.reconnect ?? {
      minDelayMs: 100,
      maxDelayMs: Math.min(1000, Math.max(250, config.stalenessBudgetMs)),
    },
  });
}

/**
 * Logs each request once, when it is answered: method, path (no query), client address, status
 * and time taken. Half the lines of Fastify's own request logging (an "incoming request" line and
 * a "request completed" one), which cost as much as the proxying on a busy gateway.
 */
function logCompletedRequests(app: FastifyInstance): void {
  app.addHook('onResponse', (request, reply, done) => {
    request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    done();
  });
}

/** Fastify as a proxy: bodies passed through as streams, every refusal a problem. */
async function proxyApp(
  logger: FastifyBaseLogger | undefined,
  https: HttpsServerOptions | undefined,
): Promise<FastifyInstance> {
  // With `https`, Fastify builds an HTTPS server; the instance is the same kind either way.
  const app = Fastify({
    https: https ?? null,
    // Requests are logged without their query string, as the audit records them.
    ...(logger ? { loggerInstance: requestLogger(logger) } : { logger: false }),
    requestIdHeader: false,
    // One line per request, at its end (see logCompletedRequests), instead of Fastify's two.
    disableRequestLogging: true,
    exposeHeadRoutes: false,
    // Framework-level refusals (a malformed URL) are problems like any other.
    frameworkErrors: (err, request, reply) => {
      request.log.info({ err: withoutQueries(err.message) }, 'request refused by the HTTP layer');
      sendProblem(reply, 'invalid_request', 'the request target is malformed');
    },
  });
  // Never parsed, never buffered, never size-limited here: the stream goes to the upstream.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  if (logger) logCompletedRequests(app);
  await app.register(replyFrom, { disableRequestLogging: true, undici: { connections: 128 } });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, 'route_not_found', `no route of this gateway answers ${request.method} on this path`),
  );
  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      request.log.info({ err: withoutQueries(err.message) }, 'request refused');
      return sendProblem(reply, 'invalid_request', 'the request cannot be forwarded as sent');
    }
    request.log.error(
      {
        err: { type: err.name, message: withoutQueries(err.message), stack: withoutQueries(err.stack ?? '') },
      },
      'gateway failure',
    );
    return sendProblem(reply, 'internal_error', 'the gateway failed to handle the request');
  });
  return app;
}

/** `/healthz` (200 while the mirror is fresh, else 503) and `/metrics`. */
function ownEndpoints(
  app: FastifyInstance,
  enforcer: Enforcer,
  metrics: GatewayMetrics,
  now: () => number,
): void {
  app.get('/healthz', async (_request, reply) => {
    const state = enforcer.state();
    const body = {
      status: state.fresh ? 'ok' : 'stale',
      ...(state.fresh ? {} : { code: 'revocation_state_stale' }),
      position: state.position,
      fresh_at: state.freshAt === undefined ? null : new Date(state.freshAt).toISOString(),
      seconds_since_fresh: state.freshAt === undefined ? null : Math.max(0, (now() - state.freshAt) / 1000),
      connected: state.connected,
      decisions: state.decisions ?? null,
    };
    return reply
      .code(state.fresh ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(body);
  });
  app.get('/metrics', async (_request, reply) =>
    reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
}

function tooLargeDetail(config: GatewayConfig): string {
  return `the request body exceeds this gateway's max_body_size (${config.limits.maxBodyBytes} bytes)`;
}

/**
 * Every request is decided before its body is read (the content-type parser hands the stream on
 * unread). A request answered without forwarding it (refused, not found, too large) is answered
 * with `Connection: close`: Node would otherwise read and discard the rest of the body to keep the
 * connection alive, which is how a 200 MB upload got read after its 401.
 */
function closeUnreadBodies(app: FastifyInstance): void {
  app.addHook('onSend', (request, reply, payload, done) => {
    if (reply.statusCode >= 400 && hasBody(request.headers) && !request.raw.complete)
      reply.header('connection', 'close');
    done(null, payload);
  });
}

/** Every other request: matched to a route, decided by the PEP, forwarded only when allowed. */
function proxyRoutes(
  app: FastifyInstance,
  config: GatewayConfig,
  enforcer: Enforcer,
  metrics: GatewayMetrics,
): void {
  const upstreamBasePath = new URL(config.upstream).pathname.replace(/\/+$/, '');
  const publicOrigin = forwardedFor(config.publicUrl, undefined);

  function forward(reply: FastifyReply, path: string, decision: Decision): FastifyReply {
    const url = `${config.upstream}${path}`;
    // The upstream must act on exactly the path that was decided on: nothing may re-resolve it.
    if (new URL(url).pathname !== `${upstreamBasePath}${path}`)
      return sendProblem(reply, 'invalid_request', 'the path cannot be forwarded as sent');
    const started = performance.now();
    // Read only now, once allowed, and counted as it streams: a chunked body has no length to check.
    let tooLarge = false;
    const { request } = reply;
    if (request.body instanceof Readable)
      request.body = cappedBody(request.body, config.limits.maxBodyBytes, () => {
        tooLarge = true;
      });
    return reply.from(url, {
      timeout: config.upstreamTimeoutMs,
      rewriteRequestHeaders: (_request, headers) =>
        upstreamHeaders(headers, decision, { ...publicOrigin, clientAddress: request.ip ?? 'unknown' }),
      onResponse: (_request, reply, response) => {
        metrics.upstreamAnswered(response.statusCode, (performance.now() - started) / 1000);
        reply.send(response.stream);
      },
      onError: (reply, { error }) => {
        if (tooLarge) {
          reply.header('connection', 'close');
          return sendProblem(reply as FastifyReply, 'payload_too_large', tooLargeDetail(config));
        }
        metrics.upstreamFailed();
        reply.request.log.warn(
          { err: withoutQueries(error.message), upstream: config.upstream },
          'upstream failed',
        );
        sendProblem(
          reply as FastifyReply,
          'upstream_unavailable',
          'the service behind the gateway did not answer',
        );
      },
    });
  }

  app.route({
    method: [...METHODS],
    url: '/*',
    handler: async (request, reply) => {
      const target = request.raw.url ?? '';
      // Refused unread: a declared body over the cap is never received, whoever sends it.
      if (declaredBodyTooLarge(request.headers, config.limits.maxBodyBytes)) {
        metrics.decided('payload_too_large');
        return sendProblem(reply, 'payload_too_large', tooLargeDetail(config));
      }
      const match = matchRoute(config.routes, request.method, target);
      if (match.kind !== 'matched') {
        const code = match.kind === 'refused' ? 'invalid_request' : 'route_not_found';
        metrics.decided(code);
        return sendProblem(
          reply,
          code,
          match.kind === 'refused'
            ? match.reason
            : `no route of this gateway answers ${request.method} on this path`,
        );
      }
      const decision = await enforcer.authorize({
        method: request.method,
        url: target,
        headers: request.headers,
        action: match.action,
        resource: match.resource,
      });
      metrics.decided(decision.code);
      if (!decision.allow) {
        const denial = denialResponse(decision);
        return reply.code(denial.status).headers(denial.headers).send(denial.body);
      }
      if (decision.dpopNonce !== undefined) reply.header('dpop-nonce', decision.dpopNonce);
      return forward(reply, match.path, decision);
    },
  });
}

/**
 * Builds the gateway: a reverse proxy that decides every request with a PEP before it reaches
 * the upstream. A request is matched to a route (no route: 404, never forwarded), decided by the
 * PEP against the route's action and resource (`htu` against `public_url`), and, when allowed,
 * forwarded with its body streamed both ways, never buffered.
 *
 * @example
 * ```ts
 * const gateway = await createGateway(resolveGatewayConfig(readGatewayConfig(file), identity));
 * await gateway.listen();
 * ```
 */
export async function createGateway(config: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const enforcer = gatewayEnforcer(config, options);
  const metrics = gatewayMetrics(() => enforcer.state(), options.now ?? Date.now);
  const app = await proxyApp(options.logger, config.tls ? gatewayHttpsOptions(config.tls) : undefined);
  applyRequestTimeouts(app.server, config.limits);
  closeUnreadBodies(app);
  ownEndpoints(app, enforcer, metrics, options.now ?? Date.now);
  proxyRoutes(app, config, enforcer, metrics);
  return {
    app,
    enforcer,
    metrics,
    async listen() {
      enforcer.start();
      return app.listen({ host: config.listen.host, port: config.listen.port });
    },
    async close() {
      await app.close();
      await enforcer.close();
    },
  };
}
