import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { EnforcementMetrics } from '../../enforcement/enforcement-metrics.js';

/** One registry per app, so several brokers in one process (tests) do not collide. */
export function installMetrics(app: FastifyInstance): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tether_' });
  const requests = new Counter({
    name: 'tether_http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'tether_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL: label cardinality stays bounded.
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    duration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
  });
  return registry;
}

/**
 * The enforcement metrics, in the app's registry: revocation latency (a session's end to each
 * PEP's ack of it) and the decisions PEPs report as dropped.
 */
export function enforcementMetrics(registry: Registry): EnforcementMetrics {
  const latency = new Histogram({
    name: 'tether_revocation_latency_seconds',
    help: 'Time from a session end to each enforcement point acknowledging it',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const dropped = new Counter({
    name: 'tether_pep_decisions_dropped_total',
    help: 'Decisions enforcement points reported as dropped (never recorded in the audit trail)',
    // Bounded: principals with the pep role, named within their tenant.
    labelNames: ['tenant', 'pep'] as const,
    registers: [registry],
  });
  return {
    revocationsApplied(latencySeconds) {
      for (const seconds of latencySeconds) latency.observe(seconds);
    },
    decisionsDropped(pep, count) {
      dropped.inc({ tenant: pep.tenant, pep: pep.name }, count);
    },
  };
}
