import type { PepDpopNonces, VerifiedDpopProof } from '@tether-broker/pep';
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/config.js';
import type { Clock } from '../domain/clock.js';
import type { Principal, Tenant } from '../domain/principal.js';
import type { ReevaluationWorker } from '../evaluation/worker.js';
import type { BrokerHealth } from '../operations/health.js';
import type { PolicyEngine } from '../policy/cedar.js';
import type { RevocationFanout } from '../revocation/fanout.js';
import type { Store } from '../store/database.js';
import type { Kek } from '../tokens/key-encryption.js';
import type { SigningKeys } from '../tokens/keys.js';

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
  reevaluation: ReevaluationWorker;
  /** Faults survived (store connections, after-commit effects, readiness, sweeper steps): logged and counted. */
  health: BrokerHealth;
}

/** The authenticated principal making an API call, and its tenant. */
export interface Caller {
  principal: Principal;
  tenant: Tenant;
  /** The request's DPoP proof, when it authenticated a DPoP-bound token (each proof is single-use). */
  proof?: VerifiedDpopProof;
}
