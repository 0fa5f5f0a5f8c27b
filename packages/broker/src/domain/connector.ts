/**
 * Connectors: a downstream system where a session gets a credential of its own, minted at
 * activation and destroyed when the session ends, whatever ends it.
 */

/** The kinds of downstream system Tether mints credentials in. */
export const CONNECTOR_KINDS = ['postgres', 'webhook'] as const;
export type ConnectorKind = (typeof CONNECTOR_KINDS)[number];

/** Settings of a connector that are not secret. */
export interface ConnectorSettings {
  /** PostgreSQL: roles the session's login role becomes a member of (empty for a webhook). */
  grantRoles: string[];
  /** Where the target is, for display: `postgres://host:port/database` (no credentials), or the webhook's URL. */
  target: string;
}

export interface Connector {
  id: string;
  tenantId: string;
  name: string;
  kind: ConnectorKind;
  settings: ConnectorSettings;
  createdAt: number;
  updatedAt: number;
}

export type ConnectorAction = 'mint' | 'destroy';

export interface ConnectorJob {
  id: string;
  tenantId: string;
  sessionId: string;
  connectorId: string;
  action: ConnectorAction;
  state: 'pending' | 'done';
  attempts: number;
  nextAttemptAt: number;
  leaseUntil: number | null;
  /** The token of the runner holding the lease (random per lease); only it may complete the job. */
  leaseToken: string | null;
  lastError: string | null;
  createdAt: number;
  doneAt: number | null;
}

/** What a session got from one connector: evidence only (the value is never kept in clear). */
export interface SessionCredential {
  sessionId: string;
  connectorId: string;
  tenantId: string;
  username: string;
  fingerprint: string;
  validUntil: number;
  mintedAt: number;
  collectedAt: number | null;
  destroyedAt: number | null;
  connectionsTerminated: number | null;
}

export const CONNECTOR_LIMITS = {
  /** Connectors one privilege may name. */
  perPrivilege: 4,
  /**
   * How long a runner holds a job before another may take it (a runner that died): longer than
   * a job can run (each of its few statements has a 5 s time cap), short enough that a killed
   * broker's cleanup resumes soon after it restarts.
   */
  leaseMs: 30_000,
  /** Failed attempts after which a job is reported (alert metric, audit record); it is never dropped. */
  alertAfterAttempts: 5,
  /** Backoff between attempts: doubling from the first, capped. */
  firstRetryMs: 1_000,
  maxRetryMs: 5 * 60_000,
} as const;

/** When a job that has failed `attempts` times is tried again: doubling, capped, with ±20% jitter. */
export function nextAttemptAfter(now: number, attempts: number, random: () => number = Math.random): number {
  const base = Math.min(
    CONNECTOR_LIMITS.maxRetryMs,
    CONNECTOR_LIMITS.firstRetryMs * 2 ** Math.max(0, Math.min(attempts - 1, 20)),
  );
  return now + Math.round(base * (0.8 + 0.4 * random()));
}
