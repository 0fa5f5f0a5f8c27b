import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { TetherError } from '@tether/protocol';
import { DEFAULTS } from './defaults.js';

const LogLevel = Type.Union(
  ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
);

/** What an operator may set. Unknown keys are refused, not ignored. */
export const ConfigInput = Type.Object(
  {
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    dataDir: Type.Optional(Type.String({ minLength: 1 })),
    database: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
    publicUrl: Type.Optional(Type.String({ pattern: '^https?://[^/?#]+(/[^?#]*)?$' })),
    requestTtlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 24 * 3600 })),
    activationWindowSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 24 * 3600 })),
    apiTokenTtlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 3600 })),
    clientAssertionMaxAgeSeconds: Type.Optional(Type.Integer({ minimum: 30, maximum: 3600 })),
    clockToleranceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 300 })),
    sweepIntervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
    refreshIdleSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 24 * 3600 })),
    dpopIatWindowSeconds: Type.Optional(Type.Integer({ minimum: 5, maximum: 300 })),
    heartbeatIntervalMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 60_000 })),
    pepLivenessSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
    dpopNonce: Type.Optional(Type.Union([Type.Literal('off'), Type.Literal('required')])),
    statusListTtlSeconds: Type.Optional(Type.Integer({ minimum: 5, maximum: 3600 })),
    revocationRetentionSeconds: Type.Optional(Type.Integer({ minimum: 3600, maximum: 365 * 24 * 3600 })),
    bodyLimitBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024 })),
    logLevel: Type.Optional(LogLevel),
    kek: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' })),
  },
  { additionalProperties: false },
);
export type ConfigInput = Static<typeof ConfigInput>;

export interface BrokerConfig {
  host: string;
  port: number;
  dataDir: string;
  database: string | undefined;
  publicUrl: string;
  requestTtlSeconds: number;
  activationWindowSeconds: number;
  apiTokenTtlSeconds: number;
  clientAssertionMaxAgeSeconds: number;
  clockToleranceSeconds: number;
  sweepIntervalMs: number;
  refreshIdleSeconds: number;
  dpopIatWindowSeconds: number;
  heartbeatIntervalMs: number;
  pepLivenessSeconds: number;
  dpopNonce: 'off' | 'required';
  statusListTtlSeconds: number;
  revocationRetentionSeconds: number;
  bodyLimitBytes: number;
  logLevel: ConfigInput['logLevel'] & string;
  kek: string | undefined;
}

/** Validates the whole configuration at once and fills in defaults. Secrets never reach the message. */
export function resolveConfig(input: unknown): BrokerConfig {
  if (!Value.Check(ConfigInput, input)) {
    const problems = [...Value.Errors(ConfigInput, input)].map((e) =>
      e.path === '/kek' ? '/kek: must be 32 bytes, base64url' : `${e.path || '/'}: ${e.message}`,
    );
    throw new TetherError('invalid_request', `invalid configuration: ${problems.join('; ')}`);
  }
  const c = input as ConfigInput;
  const host = c.host ?? DEFAULTS.host;
  const port = c.port ?? DEFAULTS.port;
  return {
    host,
    port,
    dataDir: c.dataDir ?? DEFAULTS.dataDir,
    database: c.database ?? DEFAULTS.database,
    publicUrl: (c.publicUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(
      /\/+$/,
      '',
    ),
    requestTtlSeconds: c.requestTtlSeconds ?? DEFAULTS.requestTtlSeconds,
    activationWindowSeconds: c.activationWindowSeconds ?? DEFAULTS.activationWindowSeconds,
    apiTokenTtlSeconds: c.apiTokenTtlSeconds ?? DEFAULTS.apiTokenTtlSeconds,
    clientAssertionMaxAgeSeconds: c.clientAssertionMaxAgeSeconds ?? DEFAULTS.clientAssertionMaxAgeSeconds,
    clockToleranceSeconds: c.clockToleranceSeconds ?? DEFAULTS.clockToleranceSeconds,
    sweepIntervalMs: c.sweepIntervalMs ?? DEFAULTS.sweepIntervalMs,
    refreshIdleSeconds: c.refreshIdleSeconds ?? DEFAULTS.refreshIdleSeconds,
    dpopIatWindowSeconds: c.dpopIatWindowSeconds ?? DEFAULTS.dpopIatWindowSeconds,
    heartbeatIntervalMs: c.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
    pepLivenessSeconds: c.pepLivenessSeconds ?? DEFAULTS.pepLivenessSeconds,
    dpopNonce: c.dpopNonce ?? DEFAULTS.dpopNonce,
    statusListTtlSeconds: c.statusListTtlSeconds ?? DEFAULTS.statusListTtlSeconds,
    revocationRetentionSeconds: c.revocationRetentionSeconds ?? DEFAULTS.revocationRetentionSeconds,
    bodyLimitBytes: c.bodyLimitBytes ?? DEFAULTS.bodyLimitBytes,
    logLevel: c.logLevel ?? DEFAULTS.logLevel,
    kek: c.kek ?? DEFAULTS.kek,
  };
}

/** Environment variables the broker reads, and the setting each one fills. */
export const ENVIRONMENT = {
  TETHER_HOST: 'host',
  TETHER_PORT: 'port',
  TETHER_DATA: 'dataDir',
  DATABASE_URL: 'database',
  TETHER_PUBLIC_URL: 'publicUrl',
  TETHER_LOG_LEVEL: 'logLevel',
  TETHER_KEK: 'kek',
  TETHER_DPOP_NONCE: 'dpopNonce',
  TETHER_PEP_LIVENESS_SECONDS: 'pepLivenessSeconds',
  TETHER_HEARTBEAT_INTERVAL_MS: 'heartbeatIntervalMs',
} as const;

const NUMERIC = new Set(['port', 'pepLivenessSeconds', 'heartbeatIntervalMs']);

/** Reads the settings that the environment provides. Set but empty counts as unset. */
export function configFromEnvironment(env: NodeJS.ProcessEnv): ConfigInput {
  const out: Record<string, unknown> = {};
  for (const [variable, key] of Object.entries(ENVIRONMENT)) {
    const value = env[variable];
    if (value === undefined || value === '') continue;
    out[key] = NUMERIC.has(key) && /^\d+$/.test(value) ? Number(value) : value;
  }
  return out as ConfigInput;
}
