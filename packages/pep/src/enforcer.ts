import { type AccessTokenVerifier, createAccessTokenVerifier } from './access-token.js';
import { BrokerLink, type PepIdentity } from './broker-link.js';
import { type Decision, holderOf, insufficientScope, revoked, stale, tokenDenied } from './decision.js';
import { DecisionRecorder, type DecisionRecorderOptions } from './decision-recorder.js';
import { findEntitlementRemembered, resourceProblem } from './entitlement.js';
import { type KeySource, remoteKeySource } from './jwks.js';
import { type PepLogger, silentLogger } from './logger.js';
import { type DpopNonceOptions, PepDpopNonces } from './nonce.js';
import { ReplayCache } from './replay-cache.js';
import { RevocationFallback } from './revocation-fallback.js';
import { RevocationFollower } from './revocation-follower.js';
import { RevocationMirror } from './revocation-mirror.js';
import { TokenRefused } from './token-refusal.js';

export interface EnforcerOptions {
  /** The broker's base URL, where this PEP reaches it. */
  broker: string;
  /** The broker's issuer identifier (`iss` of its tokens and events). Default: `broker`. */
  issuer?: string;
  /** This resource server's audience, as privileges name it. */
  audience: string;
  /** The tenant this PEP enforces for; tokens and events of any other tenant are refused. */
  tenant: string;
  /** This service's origin and base path as clients see it: `htu` must be this + the request path. */
  publicBaseUrl: string;
  /** The PEP's own principal (role `pep`), to follow the revocation log, ack it and report decisions. */
  identity: PepIdentity;
  /** Deny everything when the mirror has not been confirmed fresh for this long. Default 10 000. */
  stalenessBudgetMs?: number;
  /** Epoch milliseconds. Default `Date.now`; inject a manual clock in tests. */
  now?: () => number;
  fetch?: typeof fetch;
  /** The broker's signing keys. Default: its JWKS, fetched and cached, refetched on an unknown `kid` at a bounded rate. */
  keys?: KeySource;
  /** Clock skew allowed on token times. Default 5, at most 5. */
  leewaySeconds?: number;
  /** DPoP proof `jti`s remembered. Default 100 000. */
  replayCacheSize?: number;
  /** Verified tokens remembered. Default 10 000. */
  verifiedTokenCacheSize?: number;
  /**
   * Require DPoP proofs to carry a nonce this PEP issued (RFC 9449 §9), so that a proof accepted
   * here is refused at every other PEP of the audience and after this one restarts. Default off
   * for the library (clients must answer `use_dpop_nonce`; the Tether SDK does); the gateway
   * turns it on. See `nonce.ts`.
   */
  dpopNonce?: DpopNonceOptions;
  /** Report decisions to the broker (`POST /v1/decisions`). Default on; `false` turns it off. */
  decisions?: false | Omit<DecisionRecorderOptions, 'link' | 'log' | 'audience'>;
  /**
   * When the mirror is stale, answer for a token from its status list (signed by the broker,
   * cached no longer than its `ttl`) and, if `introspection` is set, from RFC 7662
   * introspection — instead of denying with 503. Default: neither (fail closed).
   */
  fallback?: { statusList?: boolean; introspection?: boolean };
  /** Reconnect delay after a failed stream. Default 100 ms doubling to 1 s. */
  reconnect?: { minDelayMs: number; maxDelayMs: number };
  log?: PepLogger;
  /** Called after each revocation event is applied. */
  onApplied?: (seq: number) => void;
}

const ENFORCER_OPTION_NAMES: ReadonlySet<string> = new Set<keyof EnforcerOptions>([
  'broker',
  'issuer',
  'audience',
  'tenant',
  'publicBaseUrl',
  'identity',
  'stalenessBudgetMs',
  'now',
  'fetch',
  'keys',
  'leewaySeconds',
  'replayCacheSize',
  'verifiedTokenCacheSize',
  'dpopNonce',
  'decisions',
  'fallback',
  'reconnect',
  'log',
  'onApplied',
]);

/** The request as the server received it. */
export interface AuthorizeRequest {
  method: string;
  /** The request target as received: path and query (`/rules/7?x=1`). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** What the request does, e.g. `firewall:rules.write`. */
  action: string;
  /** What it does it to, e.g. `firewall/edge-1`. */
  resource: string;
}

export type { Decision, DecisionCode } from './decision.js';

export interface EnforcerState {
  /** The last revocation event applied. */
  position: number;
  /** Whether the mirror is within its staleness budget now. */
  fresh: boolean;
  /** Epoch ms of the last confirmation of freshness (broker time). */
  freshAt: number | undefined;
  connected: boolean;
  lastError: string | undefined;
  decisions: { buffered: number; sent: number; dropped: number } | undefined;
}

export interface Enforcer {
  /** Starts following the revocation log; until the first caught-up heartbeat every request is denied (503). */
  start(): void;
  authorize(request: AuthorizeRequest): Promise<Decision>;
  /** The DPoP nonce this PEP hands out now (`DPoP-Nonce`), when `dpopNonce` is required; else undefined. */
  dpopNonce(): string | undefined;
  state(): EnforcerState;
  close(): Promise<void>;
}

export const ENFORCER_DEFAULTS = Object.freeze({
  stalenessBudgetMs: 10_000,
  replayCacheSize: 100_000,
  // Capped at a second: a PEP serves again within about a second of its broker coming back.
  reconnect: Object.freeze({ minDelayMs: 100, maxDelayMs: 1000 }),
});

/**
 * Creates an enforcement point: every request is decided locally — token, DPoP proof, the
 * session's live status in the revocation mirror, the staleness budget, the entitlement — with
 * no call to the broker. See `authorize` for the order of the checks.
 *
 * @example
 * ```ts
 * const pep = createEnforcer({ broker, audience, tenant, publicBaseUrl, identity });
 * pep.start();
 * const d = await pep.authorize({ method: req.method, url: req.url, headers: req.headers, action: 'firewall:rules.read', resource: 'firewall/edge-1' });
 * if (!d.allow) return deny(res, d);
 * ```
 */
export function createEnforcer(options: EnforcerOptions): Enforcer {
  // A misspelt option (`stalenessBudgetMS`) must not be silently ignored for its default.
  for (const name of Object.keys(options))
    if (!ENFORCER_OPTION_NAMES.has(name)) throw new TypeError(`createEnforcer: unknown option ${name}`);
  const now = options.now ?? Date.now;
  const log = options.log ?? silentLogger;
  const budgetMs = options.stalenessBudgetMs ?? ENFORCER_DEFAULTS.stalenessBudgetMs;
  if (!Number.isFinite(budgetMs) || budgetMs <= 0)
    throw new TypeError('createEnforcer: stalenessBudgetMs must be positive');
  const broker = options.broker.replace(/\/+$/, '');
  const issuer = (options.issuer ?? broker).replace(/\/+$/, '');
  const link = new BrokerLink({
    broker,
    issuer,
    identity: options.identity,
    now,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const brokerFetch = options.fetch ?? fetch;
  const keys =
    options.keys ??
    remoteKeySource(`${broker}/.well-known/jwks.json`, {
      now,
      fetch: async (input, init) => {
        const response = await brokerFetch(input, init);
        // RFC 9449 §8.2: the broker's DPoP nonce rides on every answer. Learnt from the key set
        // (fetched first, see start), it spares the first token request a use_dpop_nonce round trip.
        link.observe(response.headers.get('dpop-nonce'));
        return response;
      },
    });
  const verifier: AccessTokenVerifier = createAccessTokenVerifier({
    issuer,
    audience: options.audience,
    tenant: options.tenant,
    publicBaseUrl: options.publicBaseUrl,
    keys,
    now,
    replayCache: new ReplayCache({
      maxEntries: options.replayCacheSize ?? ENFORCER_DEFAULTS.replayCacheSize,
      now,
    }),
    ...(options.leewaySeconds === undefined ? {} : { leewaySeconds: options.leewaySeconds }),
    ...(options.verifiedTokenCacheSize === undefined
      ? {}
      : { verifiedTokenCacheSize: options.verifiedTokenCacheSize }),
  });
  const nonces = options.dpopNonce?.required
    ? new PepDpopNonces({
        now,
        ...(options.dpopNonce.windowSeconds === undefined
          ? {}
          : { windowSeconds: options.dpopNonce.windowSeconds }),
      })
    : undefined;
  const mirror = new RevocationMirror();
  const follower = new RevocationFollower({
    link,
    mirror,
    keys,
    tenant: options.tenant,
    pepId: options.identity.principal,
    now,
    stalenessBudgetMs: budgetMs,
    reconnect: options.reconnect ?? ENFORCER_DEFAULTS.reconnect,
    log,
    ...(options.onApplied ? { onApplied: options.onApplied } : {}),
  });
  const recorder =
    options.decisions === false
      ? undefined
      : new DecisionRecorder({ link, log, audience: options.audience, ...(options.decisions ?? {}) });
  const fallback =
    options.fallback?.statusList || options.fallback?.introspection
      ? new RevocationFallback({
          link,
          keys,
          now,
          log,
          statusList: options.fallback.statusList === true,
          introspection: options.fallback.introspection === true,
        })
      : undefined;
  const leeway = options.leewaySeconds ?? 5;
  const pruner = setInterval(() => mirror.prune(now() / 1000, leeway), 60_000);
  pruner.unref();

  async function decide(request: AuthorizeRequest, seen: { nonce?: unknown }): Promise<Decision> {
    // 0. Never confirmed fresh since start (the broker was down when this PEP started, or is
    // still being caught up with): nothing can be allowed, and a token that cannot be checked
    // yet (no keys) is the PEP's state, not the client's fault: 503, never 401.
    if (mirror.freshAt === undefined && !fallback) return stale(budgetMs, {});
    // 1. The token and its proof: signature, claims, tenant, DPoP binding and freshness, and
    // (when required) a nonce this PEP issued.
    let access: Awaited<ReturnType<AccessTokenVerifier['verify']>>;
    try {
      access = await verifier.verify({
        method: request.method,
        path: request.url,
        authorization: request.headers.authorization,
        dpop: request.headers.dpop,
        // Given the proof's verified nonce claim, which is kept for the answer's DPoP-Nonce.
        ...(nonces
          ? {
              nonce: (proofNonce: unknown) => {
                seen.nonce = proofNonce;
                return nonces.expectedFor(proofNonce);
              },
            }
          : {}),
      });
    } catch (err) {
      if (err instanceof TokenRefused) return tokenDenied(err);
      throw err;
    }
    const { claims, kid } = access;
    const holder = holderOf(claims);
    // 2. What the mirror knows: a revocation already applied is enforced even when stale.
    const refusal = mirror.check({
      sid: claims.sid,
      kid,
      iat: claims.iat,
      status: claims.status.status_list,
    });
    if (refusal !== undefined) return revoked(refusal, holder);
    // 3. The staleness budget: a mirror not confirmed complete lately may be missing a
    // revocation. Only a configured fallback may answer for this one token instead.
    if (!mirror.isFresh(now(), budgetMs)) {
      const verdict = fallback
        ? await fallback.check(presentedToken(request.headers.authorization), claims)
        : 'unavailable';
      if (verdict === 'revoked')
        return tokenDenied(
          new TokenRefused('invalid_token', 'the token has been revoked (its status says so)'),
          holder,
        );
      if (verdict === 'unavailable') return stale(budgetMs, holder);
    }
    // 4. The entitlement.
    const problem = resourceProblem(request.resource);
    const entitlement =
      problem === undefined
        ? findEntitlementRemembered(claims.authorization_details, request.action, request.resource)
        : undefined;
    if (entitlement === undefined)
      return insufficientScope(
        problem ?? 'the session is not entitled to this action on this resource',
        holder,
      );
    return { allow: true, status: 200, code: 'ok', description: 'allowed', entitlement, claims, ...holder };
  }

  return {
    start() {
      // The keys first (the first heartbeat needs them anyway, and their answer carries the
      // broker's DPoP nonce), then the stream; a key fetch that fails does not hold it back.
      void keys
        .getKey('')
        .catch(() => undefined)
        .finally(() => follower.start());
    },
    async authorize(request) {
      const seen: { nonce?: unknown } = {};
      const decision = withNonce(await decide(request, seen), nonces, seen.nonce);
      const proofNonce = seen.nonce;
      // RFC 9449 §9's handshake (a proof without any nonce, answered with one) is not an attempt
      // worth a record; a proof carrying a nonce this PEP refuses (a replay) is recorded.
      if (decision.code === 'use_dpop_nonce' && proofNonce === undefined) return decision;
      recorder?.record({
        at: now(),
        allow: decision.allow,
        code: decision.code,
        action: String(request.action ?? ''),
        resource: String(request.resource ?? ''),
        session: decision.session ?? null,
        method: String(request.method ?? ''),
        path: String(request.url ?? '').split('?')[0]!,
      });
      return decision;
    },
    dpopNonce: () => nonces?.current(),
    state() {
      const stats = recorder?.stats;
      return {
        position: mirror.position,
        fresh: mirror.isFresh(now(), budgetMs),
        freshAt: mirror.freshAt,
        connected: follower.connected,
        lastError: follower.lastError,
        decisions: stats && { buffered: stats.buffered, sent: stats.sent, dropped: stats.dropped },
      };
    },
    async close() {
      clearInterval(pruner);
      await follower.close();
      await recorder?.close();
    },
  };
}

/**
 * Hands the client the current nonce: on every refusal (it may retry), and on an allowed
 * request whose proof carried an older (previous window's) nonce, so a busy client never
 * meets the challenge.
 */
function withNonce(decision: Decision, nonces: PepDpopNonces | undefined, proofNonce: unknown): Decision {
  if (nonces === undefined) return decision;
  const current = nonces.current();
  if (decision.allow && proofNonce === current) return decision;
  return { ...decision, dpopNonce: current };
}

/** The token of an `Authorization: DPoP <token>` header the verifier has already accepted. */
function presentedToken(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? (header[0] ?? '') : (header ?? '');
  return value
    .trim()
    .replace(/^\S+\s+/, '')
    .trim();
}
