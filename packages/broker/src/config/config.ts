import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { TetherError } from '@tether-broker/protocol';
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
    revocationSnapshotBehind: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000 })),
    bodyLimitBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024 })),
    storeStatementTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
    storeConnectTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 120_000 })),
    logLevel: Type.Optional(LogLevel),
    auditCheckpointIntervalSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 * 3600 })),
    limits: Type.Optional(
      Type.Object(
        {
          windowSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
          oauthPerSource: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          deliveriesPerSource: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          publicPerSource: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          authFailuresPerSource: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          perPrincipal: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          streamsPerPrincipal: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
          oauthBodyLimitBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1024 * 1024 })),
          headersTimeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000 })),
          requestTimeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 3_600_000 })),
          keepAliveTimeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000 })),
          idleTimeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 3_600_000 })),
          recordingLapseSeconds: Type.Optional(Type.Integer({ minimum: 2, maximum: 3600 })),
          recordingChunkBytes: Type.Optional(Type.Integer({ minimum: 4096, maximum: 1024 * 1024 })),
          recordingChunksPerSession: Type.Optional(Type.Integer({ minimum: 100, maximum: 10_000_000 })),
          delegationDepth: Type.Optional(Type.Integer({ minimum: 0, maximum: 8 })),
          subSessionsPerSession: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
          recordingBytesPerSession: Type.Optional(
            Type.Integer({ minimum: 64 * 1024, maximum: 1024 * 1024 * 1024 }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    metricsToken: Type.Optional(Type.String({ pattern: '^[\\x21-\\x7e]{16,512}$' })),
    kek: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' })),
    tlsCert: Type.Optional(Type.String({ minLength: 1 })),
    tlsKey: Type.Optional(Type.String({ minLength: 1 })),
    tlsClientCa: Type.Optional(Type.String({ minLength: 1 })),
    allowInsecureHttp: Type.Optional(Type.Boolean()),
    outboundAllowHosts: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 253, pattern: '^[^\\s/?#@]+$' }), { maxItems: 256 }),
    ),
    outboundAllowHttp: Type.Optional(Type.Boolean()),
    outboundMaxResponseBytes: Type.Optional(Type.Integer({ minimum: 4096, maximum: 16 * 1024 * 1024 })),
    outboundTimeoutMs: Type.Optional(Type.Integer({ minimum: 500, maximum: 120_000 })),
    notificationMaxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    notificationMaxAgeSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 24 * 3600 })),
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
  revocationSnapshotBehind: number;
  bodyLimitBytes: number;
  storeStatementTimeoutMs: number;
  storeConnectTimeoutMs: number;
  logLevel: ConfigInput['logLevel'] & string;
  limits: { [K in keyof typeof DEFAULTS.limits]: number };
  metricsToken: string | undefined;
  kek: string | undefined;
  auditCheckpointIntervalSeconds: number;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsClientCa: string | undefined;
  allowInsecureHttp: boolean;
  outboundAllowHosts: string[];
  outboundAllowHttp: boolean;
  outboundMaxResponseBytes: number;
  outboundTimeoutMs: number;
  notificationMaxAttempts: number;
  notificationMaxAgeSeconds: number;
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
  // A key without its certificate (or a client CA without a server certificate) is a mistake, not plain HTTP.
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined) || (c.tlsClientCa && !c.tlsCert))
    throw new TetherError(
      'invalid_request',
      'invalid configuration: tlsCert and tlsKey go together, and tlsClientCa needs them',
    );
  const limits = { ...DEFAULTS.limits, ...c.limits };
  // Node refuses a header timeout above the request timeout; and an idle timeout at or below the
  // heartbeat interval would cut every revocation stream between two heartbeats.
  if (limits.headersTimeoutMs > limits.requestTimeoutMs)
    throw new TetherError(
      'invalid_request',
      'invalid configuration: limits.headersTimeoutMs exceeds limits.requestTimeoutMs',
    );
  if (limits.idleTimeoutMs <= (c.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs))
    throw new TetherError(
      'invalid_request',
      'invalid configuration: limits.idleTimeoutMs must exceed heartbeatIntervalMs',
    );
  const host = c.host ?? DEFAULTS.host;
  const scheme = c.tlsCert ? 'https' : 'http';
  const port = c.port ?? DEFAULTS.port;
  return {
    host,
    port,
    dataDir: c.dataDir ?? DEFAULTS.dataDir,
    database: c.database ?? DEFAULTS.database,
    publicUrl: (c.publicUrl ?? `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(
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
    revocationSnapshotBehind: c.revocationSnapshotBehind ?? DEFAULTS.revocationSnapshotBehind,
    bodyLimitBytes: c.bodyLimitBytes ?? DEFAULTS.bodyLimitBytes,
    storeStatementTimeoutMs: c.storeStatementTimeoutMs ?? DEFAULTS.storeStatementTimeoutMs,
    storeConnectTimeoutMs: c.storeConnectTimeoutMs ?? DEFAULTS.storeConnectTimeoutMs,
    logLevel: c.logLevel ?? DEFAULTS.logLevel,
    limits,
    metricsToken: c.metricsToken ?? DEFAULTS.metricsToken,
    kek: c.kek ?? DEFAULTS.kek,
    auditCheckpointIntervalSeconds:
      c.auditCheckpointIntervalSeconds ?? DEFAULTS.auditCheckpointIntervalSeconds,
    tlsCert: c.tlsCert ?? DEFAULTS.tlsCert,
    tlsKey: c.tlsKey ?? DEFAULTS.tlsKey,
    tlsClientCa: c.tlsClientCa ?? DEFAULTS.tlsClientCa,
    allowInsecureHttp: c.allowInsecureHttp ?? DEFAULTS.allowInsecureHttp,
    outboundAllowHosts: [...(c.outboundAllowHosts ?? DEFAULTS.outboundAllowHosts)],
    outboundAllowHttp: c.outboundAllowHttp ?? DEFAULTS.outboundAllowHttp,
    outboundMaxResponseBytes: c.outboundMaxResponseBytes ?? DEFAULTS.outboundMaxResponseBytes,
    outboundTimeoutMs: c.outboundTimeoutMs ?? DEFAULTS.outboundTimeoutMs,
    notificationMaxAttempts: c.notificationMaxAttempts ?? DEFAULTS.notificationMaxAttempts,
    notificationMaxAgeSeconds: c.notificationMaxAgeSeconds ?? DEFAULTS.notificationMaxAgeSeconds,
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
  TETHER_STORE_STATEMENT_TIMEOUT_MS: 'storeStatementTimeoutMs',
  TETHER_STORE_CONNECT_TIMEOUT_MS: 'storeConnectTimeoutMs',
  TETHER_METRICS_TOKEN: 'metricsToken',
  TETHER_TLS_CERT: 'tlsCert',
  TETHER_TLS_KEY: 'tlsKey',
  TETHER_TLS_CLIENT_CA: 'tlsClientCa',
  TETHER_ALLOW_INSECURE_HTTP: 'allowInsecureHttp',
  TETHER_OUTBOUND_ALLOW_HOSTS: 'outboundAllowHosts',
  TETHER_OUTBOUND_ALLOW_HTTP: 'outboundAllowHttp',
  TETHER_OUTBOUND_MAX_RESPONSE_BYTES: 'outboundMaxResponseBytes',
  TETHER_OUTBOUND_TIMEOUT_MS: 'outboundTimeoutMs',
} as const;

const NUMERIC = new Set([
  'port',
  'pepLivenessSeconds',
  'heartbeatIntervalMs',
  'storeStatementTimeoutMs',
  'storeConnectTimeoutMs',
  'outboundMaxResponseBytes',
  'outboundTimeoutMs',
]);
/** `1`/`true` and `0`/`false`; anything else stays a string and fails validation, naming the setting. */
const BOOLEAN = new Set(['allowInsecureHttp', 'outboundAllowHttp']);
/** Comma-separated lists. */
const LIST = new Set(['outboundAllowHosts']);
const BOOLEAN_TEXT: Record<string, boolean> = { '1': true, true: true, '0': false, false: false };

/** Reads the settings that the environment provides. Set but empty counts as unset. */
export function configFromEnvironment(env: NodeJS.ProcessEnv): ConfigInput {
  const out: Record<string, unknown> = {};
  for (const [variable, key] of Object.entries(ENVIRONMENT)) {
    const value = env[variable];
    if (value === undefined || value === '') continue;
    const lower = value.toLowerCase();
    if (LIST.has(key))
      out[key] = value
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== '');
    else if (BOOLEAN.has(key)) out[key] = Object.hasOwn(BOOLEAN_TEXT, lower) ? BOOLEAN_TEXT[lower] : value;
    else out[key] = NUMERIC.has(key) && /^\d+$/.test(value) ? Number(value) : value;
  }
  // Every limit has a variable of its own: TETHER_LIMITS_PER_PRINCIPAL sets limits.perPrincipal.
  const limits: Record<string, unknown> = {};
  for (const key of Object.keys(DEFAULTS.limits)) {
    const value = env[limitVariable(key)];
    if (value !== undefined && value !== '') limits[key] = /^\d+$/.test(value) ? Number(value) : value;
  }
  if (Object.keys(limits).length > 0) out.limits = limits;
  return out as ConfigInput;
}

/** The environment variable of `limits.<key>`: `perPrincipal` → `TETHER_LIMITS_PER_PRINCIPAL`. */
export function limitVariable(key: string): string {
  return `TETHER_LIMITS_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}
