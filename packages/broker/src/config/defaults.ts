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
  /**
   * A PEP that starts more than this many events behind the head of its tenant's log gets one
   * signed snapshot (a few KB per 32,768 sessions held) instead of every event.
   */
  revocationSnapshotBehind: 1000,
  /** How long a PEP may cache a status list token (`ttl` claim). */
  statusListTtlSeconds: 30,
  /** `required`: every DPoP proof sent to the broker must carry a nonce it issued (RFC 9449 §8). */
  dpopNonce: 'off' as 'off' | 'required',
  /**
   * Longest a store statement may run (PostgreSQL `statement_timeout`; SQLite's wait for the
   * write lock). A call that passes it answers 503 `store_unavailable`, never hangs.
   */
  storeStatementTimeoutMs: 10_000,
  /** PostgreSQL: longest wait to connect or to get a pooled connection. */
  storeConnectTimeoutMs: 5_000,
  /** Largest request body accepted, in bytes. */
  bodyLimitBytes: 256 * 1024,
  /**
   * Rate limits, timeouts and caps that keep one caller from exhausting the broker or writing
   * without bound to the audit trail. Counted per fixed window of `windowSeconds`; over a limit
   * the broker answers 429 with `Retry-After` (code `rate_limited`; `slow_down` at `/oauth/*`).
   */
  limits: {
    /** Length of one counting window, for every limit below and for the aggregated refusal records. */
    windowSeconds: 60,
    /** Requests per source address per window at `/oauth/*` (token, introspection, revocation). */
    oauthPerSource: 300,
    /** Signed deliveries per source address per window (ticket webhooks, pushed SETs). */
    deliveriesPerSource: 600,
    /** Requests per source address per window to discovery, health, metrics and the OpenAPI document. */
    publicPerSource: 1200,
    /** `/v1` calls refused as unauthenticated (401) per source address per window; past it every `/v1` call from that source is refused until the window ends. */
    authFailuresPerSource: 60,
    /** Authenticated `/v1` calls per principal (keyed by tenant and principal) per window. */
    perPrincipal: 1200,
    /** Revocation streams (`GET /v1/events`) open at once per PEP principal. */
    streamsPerPrincipal: 8,
    /** Largest body accepted at `/oauth/*` (a form with one assertion or subject token). */
    oauthBodyLimitBytes: 32 * 1024,
    /** A request whose headers have not all arrived after this long is answered 408 and closed. */
    headersTimeoutMs: 10_000,
    /** A request (headers and body) not fully received after this long is answered 408 and closed. */
    requestTimeoutMs: 30_000,
    /** An idle keep-alive connection is closed after this long; above the usual load-balancer idle timeout (60 s), so a balancer never reuses a connection the broker is closing. */
    keepAliveTimeoutMs: 72_000,
    /** A connection with no traffic either way for this long is closed; above the heartbeat interval, or streams would be cut. */
    idleTimeoutMs: 120_000,
    /**
     * A session whose privilege requires recording ends (`recording_lapsed`) when no chunk of its
     * recording has arrived for this long: `tether exec` sends one at least every few seconds,
     * so silence means the recorder is gone and the session would run unrecorded.
     */
    recordingLapseSeconds: 30,
    /** Largest recording chunk (its asciicast text) accepted in one upload. */
    recordingChunkBytes: 64 * 1024,
    /** Largest recording one session may store; past it the upload is refused and the recorder ends the session. */
    recordingBytesPerSession: 64 * 1024 * 1024,
    /**
     * Most chunks one session's recording may have (each is an audit record): a recorder that
     * sends a byte per chunk would otherwise fill the audit chain. The CLI sends one a second.
     */
    recordingChunksPerSession: 100_000,
    /**
     * How deep delegated sub-sessions may nest: 1 lets a session holder delegate to an agent,
     * 2 lets that agent delegate once more (a tool it runs), 0 turns delegation off.
     */
    delegationDepth: 2,
    /** Most live sub-sessions one session may have delegated at once. */
    subSessionsPerSession: 32,
  },
  /**
   * When set, `GET /metrics` requires `Authorization: Bearer <metricsToken>` (compared in constant
   * time). When unset, `/metrics` answers only callers on a loopback address.
   */
  metricsToken: undefined as string | undefined,
  /** pino level. */
  logLevel: 'info' as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent',
  /** PEM certificate (chain) file: with `tlsKey`, the broker serves HTTPS instead of plain HTTP. */
  tlsCert: undefined as string | undefined,
  /** PEM private key file of `tlsCert`. */
  tlsKey: undefined as string | undefined,
  /**
   * PEM CA bundle file: when set (with `tlsCert`), every client must present a certificate
   * issued by it (mutual TLS; the TLS handshake refuses others, PEPs and the CLI alike).
   */
  tlsClientCa: undefined as string | undefined,
  /**
   * A `publicUrl` over plain http that is not loopback (127.0.0.0/8, ::1, localhost) refuses
   * to start: tokens and proofs would cross the network in clear. `true` allows it (TLS
   * terminated elsewhere and the URL deliberately http).
   */
  allowInsecureHttp: false as boolean,
  /**
   * Hosts (DNS names or IP literals) the broker may call although they are, or resolve to,
   * loopback, link-local, private or reserved addresses: JWKS of trust records and signal
   * transmitters, SSF push endpoints. Empty: only public addresses are called. Env
   * `TETHER_OUTBOUND_ALLOW_HOSTS`, comma-separated.
   */
  outboundAllowHosts: [] as string[],
  /** Plain http to the hosts of `outboundAllowHosts` (never to any other host). Otherwise https only. */
  outboundAllowHttp: false as boolean,
  /** Largest answer body the broker reads from an outbound call, in bytes (JWKS are capped lower still, 64 KiB). */
  outboundMaxResponseBytes: 256 * 1024,
  /** Longest an outbound call may take in all (resolution, connection, answer). */
  outboundTimeoutMs: 10_000,
  /** Base64url 32-byte key-encryption key; when unset a 0600 file `kek` in `dataDir` is used (created once). */
  kek: undefined as string | undefined,
  /**
   * How often each audit chain whose head moved is checkpointed (an HMAC-authenticated snapshot
   * of its end; every verification checkpoints too). Deleting records written after the latest
   * checkpoint is the one change to a chain that verification cannot see.
   */
  auditCheckpointIntervalSeconds: 60,
  /**
   * A notification (Slack, Teams, email, signed webhook) that keeps failing is retried with
   * backoff (1 s doubling to 5 min, with jitter) and given up after this many attempts or
   * `notificationMaxAgeSeconds`, whichever comes first: marked failed, audited
   * (`notification.failed`) and counted (`tether_notifications_given_up_total`).
   */
  notificationMaxAttempts: 20,
  /** A notification not delivered this long after its event is given up (see `notificationMaxAttempts`). */
  notificationMaxAgeSeconds: 24 * 3600,
} as const;
