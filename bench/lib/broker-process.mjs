// A broker in its own process, as deployed: `startBroker` (HTTP listener, sweeper and, on
// PostgreSQL, the LISTEN connection that hears the other replicas). Driven over IPC by the runner.
import { openBroker, startBroker } from '../../packages/broker/dist/broker.js';
import { bootstrapTenant } from '../../packages/broker/dist/index.js';
import { openStore } from '../../packages/broker/dist/store/database.js';
import { serveParent } from './processes.mjs';

let running;

serveParent(
  {
    /**
     * `{ location, pgSchema?, port, publicUrl, dataDir, kek, logLevel?, heartbeatIntervalMs?, bootstrap }`:
     * opens the store (migrating it), starts the broker, and with `bootstrap` creates the tenant.
     */
    async start(options) {
      const store = openStore({
        location: options.location,
        ...(options.pgSchema ? { pgSchema: options.pgSchema, poolSize: options.poolSize ?? 10 } : {}),
        ...(options.statementTimeoutMs ? { statementTimeoutMs: options.statementTimeoutMs } : {}),
        ...(options.connectTimeoutMs ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      });
      const ctx = await openBroker({
        config: {
          host: '127.0.0.1',
          port: options.port,
          publicUrl: options.publicUrl,
          dataDir: options.dataDir,
          kek: options.kek,
          // Request logs at info would cost every request a log line; the benchmarks measure the work.
          logLevel: options.logLevel ?? 'warn',
          // The limits are in place (their checks are part of the cost measured) but set out of reach:
          // a benchmark sends from one address far more than a real client would.
          limits: {
            oauthPerSource: 1_000_000,
            deliveriesPerSource: 1_000_000,
            publicPerSource: 1_000_000,
            authFailuresPerSource: 1_000_000,
            perPrincipal: 1_000_000,
            streamsPerPrincipal: 10_000,
          },
          ...(options.heartbeatIntervalMs ? { heartbeatIntervalMs: options.heartbeatIntervalMs } : {}),
          ...(options.sweepIntervalMs ? { sweepIntervalMs: options.sweepIntervalMs } : {}),
          // Hosts on loopback the broker may connect to (a connector's downstream database).
          ...(options.outboundAllowHosts ? { outboundAllowHosts: options.outboundAllowHosts } : {}),
        },
        store,
      });
      running = await startBroker(ctx);
      if (!options.bootstrap) return { type: 'started', url: running.url };
      const boot = await bootstrapTenant(ctx.store, ctx.clock, {
        tenantName: 'bench',
        adminName: 'bench-admin',
      });
      return {
        type: 'started',
        url: running.url,
        tenant: boot.tenant.id,
        admin: { principal: boot.admin.id, key: boot.adminPrivateJwk },
      };
    },
  },
  async () => {
    await running?.stop();
  },
);
