import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { TetherError } from '@tether-broker/protocol';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { BrokerContext } from '../core/context.js';
import { exposeSigningKeyMetrics } from '../tokens/keys.js';
import { sharedSchemaCompilers } from './compilers.js';
import { installErrorHandling } from './error-handler.js';
import { requireAuthentication } from './plugins/authenticate.js';
import { enforcementMetrics, installMetrics } from './plugins/metrics.js';
import { installLimits, serverTimeouts } from './plugins/rate-limit.js';
import { auditRoutes } from './routes/audit.js';
import { authzenMetadataRoutes, authzenRoutes } from './routes/authzen.js';
import { connectorRoutes } from './routes/connectors.js';
import { consoleRoutes, invitationRoutes } from './routes/console.js';
import { consoleOidcAdminRoutes, consoleOidcRoutes } from './routes/console-oidc.js';
import { discoveryRoutes } from './routes/discovery.js';
import { eventRoutes } from './routes/events.js';
import { federationRoutes } from './routes/federations.js';
import { groupRoutes } from './routes/groups.js';
import { notificationChannelRoutes } from './routes/notification-channels.js';
import { oauthRoutes } from './routes/oauth.js';
import { operationsRoutes } from './routes/operations.js';
import { pepRoutes } from './routes/peps.js';
import { policyRoutes } from './routes/policies.js';
import { principalRoutes } from './routes/principals.js';
import { privilegeRoutes } from './routes/privileges.js';
import { receiptRoutes } from './routes/receipts.js';
import { recordingRoutes } from './routes/recordings.js';
import { requestRoutes } from './routes/requests.js';
import { sessionRoutes } from './routes/sessions.js';
import { signalDeliveryRoutes, signalTransmitterRoutes } from './routes/signals.js';
import { ssfDiscoveryRoutes, ssfRoutes } from './routes/ssf.js';
import { statusListRoutes } from './routes/status-lists.js';
import { tenancyRoutes } from './routes/tenancy.js';
import { tenantCutoffRoutes } from './routes/tenant-cutoff.js';
import { tenantRoutes } from './routes/tenants.js';
import { ticketRoutes } from './routes/tickets.js';
import { webhookDeliveryRoutes, webhookRoutes } from './routes/webhooks.js';
import { EmptyObject } from './schemas/common.js';
import { AJV_CUSTOM_OPTIONS } from './validation.js';

/** How long closing the app waits for requests under way before it cuts their connections. */
const CLOSE_GRACE_MS = 3000;

/**
 * The broker's HTTP API. Public routes (discovery, health, token) sit at the root; everything
 * under `/v1` is behind one authentication hook.
 */
export async function buildApp(ctx: BrokerContext): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: ctx.logger as FastifyBaseLogger,
    bodyLimit: ctx.config.bodyLimitBytes,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    ajv: { customOptions: { ...AJV_CUSTOM_OPTIONS } },
    schemaController: sharedSchemaCompilers,
    return503OnClosing: true,
    // Slow headers, slow bodies and idle connections are cut (`limits` in the configuration).
    ...serverTimeouts(ctx.config),
    forceCloseConnections: 'idle',
    // Room for a 128-character name even when every character is percent-encoded.
    routerOptions: { maxParamLength: 512 },
    // A malformed escape or an over-long path parameter fails before routing; answer it in
    // the same documented shape as every other error instead of Fastify's default JSON.
    frameworkErrors: (err, request, reply) => reply.server.errorHandler(err, request, reply),
  }).withTypeProvider<TypeBoxTypeProvider>();

  installErrorHandling(app);
  // Closing waits for the requests under way, never for a client that keeps one open (a long
  // poll, a stream, a request arriving as the app closes): after a grace, what is left is cut.
  let drain: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    drain = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
    drain.unref();
  });
  app.addHook('onClose', async () => clearTimeout(drain));
  // A route that declares no query string takes none: an unknown key is refused like an
  // unknown body field. The token endpoint is the exception, as RFC 6749 §3.2 requires.
  app.addHook('onRoute', (route) => {
    if (route.schema?.querystring || route.url.startsWith('/oauth/')) return;
    route.schema = { ...route.schema, querystring: EmptyObject };
  });
  // Ajv coerces "1e309" or "Infinity" to Infinity and then skips every numeric bound for a
  // non-finite number. No value of this API is infinite: refuse one wherever it arrived.
  app.addHook('preHandler', async (request) => {
    if ([request.params, request.query, request.body].some(holdsNonFiniteNumber))
      throw new TetherError('invalid_request', 'a number in the request is out of range');
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // RFC 9449 §8.2: the current nonce rides on every response, so clients rarely need a retry.
    if (ctx.nonces) reply.header('dpop-nonce', ctx.nonces.current());
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Tether broker API', version: '1.0.0', description: 'Session-bound privilege broker' },
      servers: [{ url: ctx.config.publicUrl }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
  });
  const metrics = installMetrics(app);
  exposeSigningKeyMetrics(metrics, ctx.keys);
  ctx.health.expose(metrics);
  ctx.connectors.expose?.(metrics);
  ctx.notifications.expose?.(metrics);
  // Rate limits per source (unauthenticated routes) and per principal (the /v1 API).
  const limits = await installLimits(app, ctx);

  await app.register(
    limits.scope(
      'public',
      operationsRoutes(ctx, metrics),
      discoveryRoutes(ctx),
      ssfDiscoveryRoutes(ctx),
      authzenMetadataRoutes(ctx),
      consoleRoutes(ctx),
      consoleOidcRoutes(ctx),
    ),
  );
  await app.register(limits.scope('oauth', oauthRoutes(ctx)));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // Ticket-system deliveries authenticate by their HMAC signature, not a token: outside the hook.
  // Pushed SETs authenticate by their transmitter's signature, not a token: outside the hook too.
  await app.register(limits.scope('deliveries', webhookDeliveryRoutes(ctx), signalDeliveryRoutes(ctx)), {
    prefix: '/v1',
  });
  // Status lists are public (Token Status List): relying parties fetch them without credentials.
  await app.register(limits.scope('public', statusListRoutes(ctx)), { prefix: '/v1' });

  await app.register(
    async (v1) => {
      limits.beforeAuthentication(v1);
      requireAuthentication(v1, ctx);
      limits.afterAuthentication(v1);
      await v1.register(tenantRoutes());
      await v1.register(tenantCutoffRoutes(ctx));
      await v1.register(principalRoutes(ctx));
      await v1.register(invitationRoutes(ctx));
      await v1.register(consoleOidcAdminRoutes(ctx));
      await v1.register(groupRoutes(ctx));
      await v1.register(tenancyRoutes(ctx));
      await v1.register(privilegeRoutes(ctx));
      await v1.register(federationRoutes(ctx));
      await v1.register(policyRoutes(ctx));
      await v1.register(requestRoutes(ctx));
      await v1.register(sessionRoutes(ctx));
      await v1.register(auditRoutes(ctx));
      await v1.register(eventRoutes(ctx));
      await v1.register(webhookRoutes(ctx));
      await v1.register(connectorRoutes(ctx));
      await v1.register(notificationChannelRoutes(ctx));
      await v1.register(recordingRoutes(ctx));
      await v1.register(ticketRoutes(ctx));
      await v1.register(pepRoutes(ctx, enforcementMetrics(metrics)));
      await v1.register(receiptRoutes(ctx));
      await v1.register(signalTransmitterRoutes(ctx));
      await v1.register(ssfRoutes(ctx));
    },
    { prefix: '/v1' },
  );
  // OpenID AuthZEN 1.0 (PDP): authenticated PEPs, the same hooks and limits as /v1.
  await app.register(
    async (authzen) => {
      limits.beforeAuthentication(authzen);
      requireAuthentication(authzen, ctx);
      limits.afterAuthentication(authzen);
      await authzen.register(authzenRoutes(ctx));
    },
    { prefix: '/access/v1' },
  );
  await app.ready();
  return app;
}

/** Walks a parsed request part (iteratively: a hostile body may nest deeply). */
function holdsNonFiniteNumber(value: unknown): boolean {
  const pending = [value];
  while (pending.length > 0) {
    const v = pending.pop();
    if (typeof v === 'number' && !Number.isFinite(v)) return true;
    // A raw body (webhook deliveries) is bytes, not parsed numbers.
    if (typeof v === 'object' && v !== null && !Buffer.isBuffer(v))
      for (const member of Object.values(v)) pending.push(member);
  }
  return false;
}
