import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type DestinationStream, type Logger, pino } from 'pino';
import { pruneSpentJtis } from './auth/client-assertion.js';
import type { ConfigInput } from './config/config.js';
import { type BrokerConfig, resolveConfig } from './config/config.js';
import { type Clock, systemClock } from './domain/clock.js';
import { sweepContinuousEvaluation } from './evaluation/sweep.js';
import { ReevaluationWorker } from './evaluation/worker.js';
import { buildApp } from './http/app.js';
import { PolicyEngine } from './policy/cedar.js';
import { RevocationFanout } from './revocation/fanout.js';
import { RevocationNotifyListener } from './revocation/pg-notify.js';
import { compactRevocationLog } from './revocation/snapshot.js';
import { pruneSpentProofs } from './services/broker-dpop.js';
import type { BrokerContext } from './services/context.js';
import { endIdleSessions } from './services/end-idle-sessions.js';
import { endExpiredSessions } from './services/end-session.js';
import { expireOverdueRequests } from './services/expire-requests.js';
import { pruneAckHistory } from './services/pep-ack.js';
import { startSsfDelivery } from './ssf/worker.js';
import { migrateToLatest, openStore, type Store } from './store/database.js';
import { DpopNonces } from './tokens/dpop-nonce.js';
import { type Kek, loadKek } from './tokens/key-encryption.js';
import { ensureSigningKey, retireExpiredKeys, SigningKeys } from './tokens/keys.js';

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
  const store = options.store ?? openStore({ location: storeLocation(config) });
  await migrateToLatest(store);
  const kek = loadKek(config);
  await ensureSigningKey(store, kek, clock);
  const keys = new SigningKeys(store, kek, clock);
  await keys.load();
  const policy = new PolicyEngine();
  const revocations = new RevocationFanout();
  return {
    store,
    clock,
    config,
    policy,
    keys,
    logger,
    kek,
    revocations,
    reevaluation: new ReevaluationWorker({ store, clock, policy, logger, revocations }),
    ...(config.dpopNonce === 'required' ? { nonces: new DpopNonces(kek, clock) } : {}),
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
  const revocationListener = await RevocationNotifyListener.start({
    store: ctx.store,
    fanout: ctx.revocations,
    logger: ctx.logger,
  });
  let app: FastifyInstance;
  let address: string;
  try {
    app = await buildApp(ctx);
    address = await app.listen({ host: ctx.config.host, port: ctx.config.port });
  } catch (err) {
    await revocationListener?.close();
    throw err;
  }
  let sweeping = false;
  const sweep = async () => {
    if (sweeping) return;
    sweeping = true;
    try {
      const expired = await expireOverdueRequests(ctx);
      if (expired > 0) ctx.logger.info({ expired }, 'expired overdue requests');
      const ended = await endExpiredSessions(ctx);
      if (ended > 0) ctx.logger.info({ ended }, 'ended sessions at their hard expiry');
      const idle = await endIdleSessions(ctx);
      if (idle > 0) ctx.logger.info({ idle }, 'ended idle sessions');
      await pruneSpentJtis(ctx.store, ctx.clock.now());
      await pruneSpentProofs(ctx, ctx.clock.now());
      await sweepContinuousEvaluation(ctx, ctx.clock.now());
      await retireExpiredKeys(ctx.store, ctx.clock.now(), ctx.revocations);
      const compacted = await compactRevocationLog(
        ctx.store,
        ctx.clock.now() - ctx.config.revocationRetentionSeconds * 1000,
      );
      if (compacted > 0) ctx.logger.info({ compacted }, 'compacted the revocation log');
      await pruneAckHistory(ctx.store, ctx.clock.now());
      // Picks up a rotation made by `tether keys rotate` or another replica.
      await ctx.keys.load();
    } catch (err) {
      ctx.logger.error({ err }, 'sweeper failed; will retry');
    } finally {
      sweeping = false;
    }
  };
  const timer = setInterval(sweep, ctx.config.sweepIntervalMs);
  timer.unref();
  void sweep();
  // Pushes SETs to the SSF receivers' endpoints (RFC 8935), with retries.
  const ssfDelivery = startSsfDelivery(ctx);
  return {
    ctx,
    app,
    url: address,
    revocationListener,
    async stop() {
      clearInterval(timer);
      await app.close();
      // The batch under way finishes; pending jobs stay queued for the next start.
      await ctx.reevaluation.stop();
      await ssfDelivery.stop();
      await revocationListener?.close();
      await ctx.store.close();
    },
  };
}
