import type { PepDpopNonces, VerifiedDpopProof } from '@tether-broker/pep';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BrokerConfig } from '../config/config.js';
import type { Kek } from '../config/key-encryption.js';
import type { Clock } from '../domain/clock.js';
import type { Principal, Tenant } from '../domain/principal.js';
import type { PolicyEngine } from '../policy/cedar.js';
import type { RevocationFanout } from '../revocation/fanout.js';
import type { Store } from '../store/database.js';
import type { SigningKeys } from '../tokens/keys.js';
import type { BrokerHealth } from './health.js';

/**
 * The queue of live-session re-evaluations as use cases see it (`evaluation/worker.ts`'s
 * `ReevaluationWorker`): declared here so the core does not import the evaluation layer above it.
 */
export interface ReevaluationQueue {
  /** Drains the queue soon; jobs written in a transaction are picked up after it commits. */
  wake(): void;
  /** Resolves once no drain is running (including drains started while waiting). */
  idle(): Promise<void>;
  /** Finishes the batch under way and stops taking more; for shutdown. */
  stop(): Promise<void>;
}

/**
 * The connector job queue as use cases see it (`connectors/worker.ts`'s `ConnectorWorker`):
 * declared here so the core does not import the connectors layer above it.
 */
export interface ConnectorQueue {
  /** Runs due jobs soon; jobs written in a transaction are picked up after it commits. */
  wake(): void;
  /** Resolves once no run is under way. */
  idle(): Promise<void>;
  /** Finishes the job under way and takes no more; for shutdown. */
  stop(): Promise<void>;
  /** Adds the queue's metrics (failing jobs) to an app's registry. */
  expose?(registry: Registry): void;
}

/**
 * The notification outbox's delivery worker as the broker sees it (`notifications/worker.ts`'s
 * `NotificationWorker`): declared here so the core does not import the layer above it. Rows are
 * queued in transactions by `core/notification-outbox.ts` and wake it once they commit.
 */
export interface NotificationQueue {
  /** Starts polling the outbox (other replicas' rows, ended backoffs). */
  start(): void;
  /** Delivers due notifications soon. */
  wake(): void;
  /** Runs one pass over every due notification now and resolves when it is done (tests). */
  runOnce(): Promise<void>;
  /** Resolves once no pass is under way. */
  idle(): Promise<void>;
  /** Finishes the deliveries under way and takes no more; for shutdown. */
  stop(): Promise<void>;
  /** Adds the delivery metrics to an app's registry. */
  expose?(registry: Registry): void;
}

/** Everything a use case needs, passed explicitly. */
export interface BrokerContext {
  /** Present when the broker requires server-issued DPoP nonces (`dpopNonce: required`). */
  nonces?: PepDpopNonces;
  store: Store;
  clock: Clock;
  config: BrokerConfig;
  policy: PolicyEngine;
  keys: SigningKeys;
  /** Seals and opens secrets kept at rest (webhook secrets), as it does the signing keys. */
  kek: Kek;
  logger: Logger;
  /** Wakes this process's revocation streams after a transaction that appended events commits. */
  revocations: RevocationFanout;
  /** Drains the queue of live-session re-evaluations (continuous evaluation) in this process. */
  reevaluation: ReevaluationQueue;
  /** Runs connector jobs (downstream credentials minted and destroyed) in this process. */
  connectors: ConnectorQueue;
  /** Delivers notifications (Slack, Teams, email, signed webhooks) from the outbox in this process. */
  notifications: NotificationQueue;
  /** Faults survived (store connections, after-commit effects, readiness, sweeper steps): logged and counted. */
  health: BrokerHealth;
}

/** The authenticated principal making an API call, and its tenant. */
export interface Caller {
  principal: Principal;
  tenant: Tenant;
  /** The request's DPoP proof, when it authenticated a DPoP-bound token (each proof is single-use). */
  proof?: VerifiedDpopProof;
  /**
   * Epoch ms of the person's last passkey verification, when the caller is a console session
   * signed in (or re-verified) with a passkey. Approvals that ask for a fresh verification read it.
   */
  verifiedAt?: number;
  /** Set when the caller's token was obtained by `tether login`: the login it names. */
  loginId?: string;
}
