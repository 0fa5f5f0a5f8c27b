/**
 * Every default, in one place. The README's configuration reference mirrors this file.
 */
export const DEFAULTS = {
  /** Listen address. */
  host: '127.0.0.1',
  port: 8700,
  /** Where the embedded store and the key-encryption key live. */
  dataDir: './.tether',
  /** PostgreSQL URL; when unset, the embedded SQLite store in `dataDir` is used. */
  database: undefined as string | undefined,
  /** The broker's public base URL: the `iss` of its tokens, the base of `htu`/`aud` checks. Defaults to http://host:port. */
  publicUrl: undefined as string | undefined,
  /** How long an access request may stay pending before it expires. */
  requestTtlSeconds: 3600,
  /** How long after approval a request may be activated into a session. */
  activationWindowSeconds: 3600,
  /** Lifetime of a broker-API access token issued at /oauth/token. */
  apiTokenTtlSeconds: 600,
  /** Longest lifetime a client assertion may declare (exp − iat), and its required freshness. */
  clientAssertionMaxAgeSeconds: 300,
  /** Clock skew tolerated on `iat`/`exp`/`nbf` of assertions and tokens. */
  clockToleranceSeconds: 30,
  /** How often the sweeper expires overdue requests and prunes spent assertion ids. */
  sweepIntervalMs: 5000,
  /** A refresh token unused for this long can no longer be used (and its session ends, `idle`). */
  refreshIdleSeconds: 900,
  /** DPoP proofs must have `iat` within ± this many seconds of the broker's clock. */
  dpopIatWindowSeconds: 60,
  /** How often the revocation stream (`GET /v1/events`) sends each PEP a signed heartbeat. */
  heartbeatIntervalMs: 2000,
  /**
   * A PEP heard from (ack or decision report) within this many seconds is live: session
   * receipts wait for it. Keep it above the PEPs' staleness budget (default 10 s): a PEP silent
   * for longer than its budget denies every request, so it can no longer honour an ended session.
   */
  pepLivenessSeconds: 30,
  /**
   * Revocation events older than this are deleted by the sweeper; a PEP resuming from before
   * them gets a signed snapshot instead. At least an hour: longer than any access token lives
   * (a compacted narrowing only ever refused tokens that have expired since).
   */
  revocationRetentionSeconds: 24 * 3600,
  /** How long a PEP may cache a status list token (`ttl` claim). */
  statusListTtlSeconds: 30,
  /** `required`: every DPoP proof sent to the broker must carry a nonce it issued (RFC 9449 §8). */
  dpopNonce: 'off' as 'off' | 'required',
  /** Largest request body accepted, in bytes. */
  bodyLimitBytes: 256 * 1024,
  /** pino level. */
  logLevel: 'info' as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent',
  /** Base64url 32-byte key-encryption key; when unset a 0600 file `kek` in `dataDir` is used (created once). */
  kek: undefined as string | undefined,
} as const;
