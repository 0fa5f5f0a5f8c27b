import type { EnforcerState } from '@tether-broker/pep';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** What the gateway counts; one registry per gateway, so several in one process do not collide. */
export interface GatewayMetrics {
  registry: Registry;
  /** A request decided: `ok`, a PEP denial code, or the gateway's own refusal (`route_not_found`, `invalid_request`). */
  decided(code: string): void;
  /** An answer from the upstream (its headers arrived) after `seconds`. */
  upstreamAnswered(status: number, seconds: number): void;
  upstreamFailed(): void;
}

/**
 * The gateway's Prometheus metrics. Labels stay bounded: decision codes come from the catalogue,
 * upstream statuses are reduced to their class.
 */
export function gatewayMetrics(state: () => EnforcerState, now: () => number): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tether_gateway_' });
  const decisions = new Counter({
    name: 'tether_gateway_decisions_total',
    help: 'Requests decided by the gateway, by code (ok = allowed and forwarded)',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'tether_gateway_mirror_position',
    help: 'The last revocation event the gateway applied',
    registers: [registry],
    collect() {
      this.set(state().position);
    },
  });
  new Gauge({
    name: 'tether_gateway_mirror_fresh',
    help: '1 while the revocation mirror is within its staleness budget, else 0 (every request denied)',
    registers: [registry],
    collect() {
      this.set(state().fresh ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tether_gateway_seconds_since_fresh',
    help: 'Seconds since the revocation mirror was last confirmed fresh (+Inf before the first time)',
    registers: [registry],
    collect() {
      const at = state().freshAt;
      this.set(at === undefined ? Number.POSITIVE_INFINITY : Math.max(0, (now() - at) / 1000));
    },
  });
  new Gauge({
    name: 'tether_gateway_decisions_dropped',
    help: 'Decisions the gateway could not report to the broker (buffer full)',
    registers: [registry],
    collect() {
      this.set(state().decisions?.dropped ?? 0);
    },
  });
  const latency = new Histogram({
    name: 'tether_gateway_upstream_duration_seconds',
    help: "Time from forwarding a request to the upstream's response headers, by status class",
    labelNames: ['status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'tether_gateway_upstream_errors_total',
    help: 'Forwarded requests the upstream did not answer (refused, reset, timed out)',
    registers: [registry],
  });
  // Label children looked up once, not hashed from a label object on every request.
  const byCode = new Map<string, ReturnType<typeof decisions.labels>>();
  const byClass = new Map<number, ReturnType<typeof latency.labels>>();
  return {
    registry,
    decided(code) {
      let child = byCode.get(code);
      if (child === undefined) {
        child = decisions.labels(code);
        byCode.set(code, child);
      }
      child.inc();
    },
    upstreamAnswered(status, seconds) {
      const statusClass = Math.floor(status / 100);
      let child = byClass.get(statusClass);
      if (child === undefined) {
        child = latency.labels(`${statusClass}xx`);
        byClass.set(statusClass, child);
      }
      child.observe(seconds);
    },
    upstreamFailed: () => failures.inc(),
  };
}
