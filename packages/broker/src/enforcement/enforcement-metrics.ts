/**
 * What the enforcement use cases report for monitoring. The HTTP app backs it with its
 * prom-client registry (http/plugins/metrics.ts); the use cases call it only after commit.
 */
export interface EnforcementMetrics {
  /** A PEP has applied session ends, each this many seconds after the session ended. */
  revocationsApplied(latencySeconds: readonly number[]): void;
  /** A PEP reported decisions it could not deliver. */
  decisionsDropped(pep: { tenant: string; name: string }, count: number): void;
}
