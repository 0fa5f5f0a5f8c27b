import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type DestinationStream, type Logger, pino } from 'pino';
import { adoptAuditKeys, sealLegacyChains } from './audit/checkpoints.js';
import { recordSettingsChange } from './audit/settings.js';
import type { ConfigInput } from './config/config.js';
import { type BrokerConfig, resolveConfig } from './config/config.js';
import { type Kek, loadKek } from './config/key-encryption.js';
import { ConnectorWorker } from './connectors/worker.js';
import type { BrokerContext } from './core/context.js';
import { BrokerHealth } from './core/health.js';
import { type Clock, systemClock } from './domain/clock.js';
import { ReevaluationWorker } from './evaluation/worker.js';
import { buildApp } from './http/app.js';
import { serverTimeouts } from './http/plugins/rate-limit.js';
import { NotificationWorker } from './notifications/worker.js';
import { ensureSigningKey, resealLegacySigningKeys } from './operations/signing-keys.js';
import { sweepOnce } from './operations/sweeper.js';
import { PolicyEngine } from './policy/cedar.js';
import { RevocationFanout } from './revocation/fanout.js';
import { RevocationNotifyListener } from './revocation/pg-notify.js';
import { startSsfDelivery } from './ssf-streams/worker.js';
import { migrateToLatest, openStore, type Store } from './store/database.js';
import { secureDataDir } from './store/file-modes.js';
import { brokerDpopNonces } from './tokens/dpop-nonce.js';
import { SigningKeys } from './tokens/keys.js';
import { assertSecureTransport, listenTls, type TlsListener, tlsServerOptions } from './transport.js';

/** Where the store lives: PostgreSQL when a URL is configured, else SQLite in the data directory. */
export function storeLocation(config: Pick<BrokerConfig, 'database' | 'dataDir'>): string {
  return config.database ?? join(config.dataDir, 'tether.db');
}

/** Log redaction: nothing that looks like a credential reaches the log. */
export const LOG_REDACT = [
  'req.headers.authorization',
  'req.headers.dpop',
  'req.headers.cookie',
  '*.client_assertion',
  '*.access_token',
  '*.refresh_token',
  '*.key',
  '*.d',
];

/** A pino logger at `level`, writing to stdout unless another destination is given (the CLI uses stderr). */
export function createLogger(level: BrokerConfig['logLevel'], destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: LOG_REDACT, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}

export interface OpenBrokerOptions {
  config: ConfigInput;
  clock?: Clock;
  logger?: Logger;
  /** An already-open store (tests); otherwise opened from the configuration. */
  store?: Store;
}

/** Opens the store, migrates it, loads the signing keys: everything a broker needs but its listener. */
export async function openBroker(options: OpenBrokerOptions): Promise<BrokerContext & { kek: Kek }> {
  const config = resolveConfig(options.config);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.logLevel);
  // The data directory holds the SQLite store and/or the KEK file: owner-only, tightened if found looser.
  if ((options.store === undefined && config.database === undefined) || config.kek === undefined)
    secureDataDir(config.dataDir, logger);
  const health = new BrokerHealth(logger);
  const store =
    options.store ??
    openStore({
      location: storeLocation(config),
      statementTimeoutMs: config.storeStatementTimeoutMs,
      connectTimeoutMs: config.storeConnectTimeoutMs,
      onConnectionError: (err) => health.storeConnectionError(err),
    });
  // After-commit effects that throw are logged and counted, never swallowed.
  store.effectErrors ??= (err) => health.effectFailed(err);
  await migrateToLatest(store);
  const kek = loadKek(config);
  // Key the audit chains (sealing what was written unkeyed), record changed settings, re-seal
  // legacy signing keys with their binding: all before any key is trusted or record appended.
  const auditKeys = await adoptAuditKeys(store, kek, clock.now());
  await sealLegacyChains(store, auditKeys, clock.now(), logger);
  await recordSettingsChange(store, config, clock.now());
  const resealed = await resealLegacySigningKeys(store, kek, clock);
  if (resealed.length > 0)
    logger.info({ kids: resealed }, 're-sealed signing keys with their kid and public key bound');
  await ensureSigningKey(store, kek, clock);
  const keys = new SigningKeys(store, kek, clock, logger);
  await keys.load();
  const policy = new PolicyEngine();
  const revocations = new RevocationFanout();
  const connectors = new ConnectorWorker({ store, clock, kek, config, logger, keys });
  return {
    store,
    clock,
    config,
    policy,
    keys,
    logger,
    kek,
    revocations,
    reevaluation: new ReevaluationWorker({ store, clock, policy, logger, revocations, connectors, kek }),
    connectors,
    notifications: new NotificationWorker({ store, clock, kek, config, logger }),
    health,
    ...(config.dpopNonce === 'required' ? { nonces: brokerDpopNonces(kek, clock) } : {}),
  };
}

export interface RunningBroker {
  ctx: BrokerContext;
  app: FastifyInstance;
  url: string;
  /** PostgreSQL only: the connection that hears the other replicas' revocations. */
  revocationListener: RevocationNotifyListener | undefined;
  stop(): Promise<void>;
}

/**
 * Starts the HTTP listener, the sweeper and, on PostgreSQL, the revocation listener (before
 * the first stream can open). `stop()` drains requests, then closes the store.
 */
export async function startBroker(ctx: BrokerContext): Promise<RunningBroker> {
  // Before anything opens: a clear refusal, not a broker that leaks tokens over the network.
  assertSecureTransport(ctx.config);
  const tls = tlsServerOptions(ctx.config);
  const revocationListener = await RevocationNotifyListener.start({
    store: ctx.store,
    fanout: ctx.revocations,
    logger: ctx.logger,
  });
  let app: FastifyInstance;
  let address: string;
  let tlsListener: TlsListener | undefined;
  try {
    app = await buildApp(ctx);
    if (tls) {
      // Node takes the interval at which it enforces header/request timeouts only at creation.
      const { connectionsCheckingInterval } = serverTimeouts(ctx.config).http;
      tlsListener = await listenTls(
        app,
        { ...tls, connectionsCheckingInterval },
        ctx.config.host,
        ctx.config.port,
      );
      address = tlsListener.url;
    } else {
      address = await app.listen({ host: ctx.config.host, port: ctx.config.port });
    }
  } catch (err) {
    await revocationListener?.close();
    throw err;
  }
  let sweeping = false;
  const sweep = async () => {
    if (sweeping) return;
    sweeping = true;
    try {
      await sweepOnce(ctx);
    } finally {
      sweeping = false;
    }
  };
  const timer = setInterval(sweep, ctx.config.sweepIntervalMs);
  timer.unref();
  void sweep();
  // Pushes SETs to the SSF receivers' endpoints (RFC 8935), with retries.
  const ssfDelivery = startSsfDelivery(ctx);
  // Delivers notifications from the outbox (this process's rows as they commit, others' by polling).
  ctx.notifications.start();
  return {
    ctx,
    app,
    url: address,
    revocationListener,
    async stop() {
      clearInterval(timer);
      const closing = tlsListener?.close();
      await app.close();
      // Streams ended by the app's preClose leave idle keep-alive connections: close them too.
      tlsListener?.server.closeIdleConnections();
      await closing;
      // The batch under way finishes; pending jobs stay queued for the next start.
      await ctx.reevaluation.stop();
      await ctx.connectors.stop();
      await ctx.notifications.stop();
      await ssfDelivery.stop();
      await revocationListener?.close();
      await ctx.store.close();
    },
  };
}
