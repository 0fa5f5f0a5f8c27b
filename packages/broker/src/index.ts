export type { AuditEntry, AuditRecord } from './audit/chain.js';
export { adoptAuditKeys } from './audit/checkpoints.js';
export type { ChainVerification } from './audit/verify.js';
export {
  createLogger,
  type OpenBrokerOptions,
  openBroker,
  type RunningBroker,
  startBroker,
  storeLocation,
} from './broker.js';
export type { BrokerConfig, ConfigInput } from './config/config.js';
export { configFromEnvironment, ENVIRONMENT, resolveConfig } from './config/config.js';
export { DEFAULTS } from './config/defaults.js';
export { loadKek } from './config/key-encryption.js';
export type { BrokerContext, Caller } from './core/context.js';
export { type DemoSeed, seedDemo } from './demo/seed.js';
export { type Clock, ManualClock, systemClock } from './domain/clock.js';
export { buildApp } from './http/app.js';
export { rotateSigningKey } from './operations/signing-keys.js';
export { type Bootstrapped, bootstrapTenant, type TenantBootstrap } from './records/bootstrap.js';
export { isPostgresUrl, migrateToLatest, openStore, type Store } from './store/database.js';
export { DEFAULT_ROTATION_OVERLAP_SECONDS } from './tokens/keys.js';
export { assertSecureTransport, tlsServerOptions } from './transport.js';
