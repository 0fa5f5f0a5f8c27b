import { type CryptoKey, importJWK, type JWK } from 'jose';

/**
 * Where an access-token verifier finds the issuer's public signing keys, by `kid`.
 *
 * `getKey` resolves to `undefined` when the issuer has no such key, and rejects (with
 * {@link KeySourceUnavailableError} for the sources here) when it cannot currently vouch for any
 * key: the verifier refuses the token either way.
 */
export interface KeySource {
  getKey(kid: string): Promise<CryptoKey | undefined>;
}

/** A JWKS document that cannot be used: malformed, holding private key material, or ambiguous. */
export class JwksError extends Error {
  override readonly name = 'JwksError';
}

/**
 * A remote key source holds no keys it may still use: it has never fetched the JWKS, or its last
 * successful fetch is older than `cacheMaxAgeMs` and refreshing failed. Fails closed.
 */
export class KeySourceUnavailableError extends Error {
  override readonly name = 'KeySourceUnavailableError';
}

export interface RemoteKeySourceOptions {
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** Epoch milliseconds; inject a manual clock in tests. */
  now: () => number;
  /** Least time between two fetch attempts, so unknown `kid`s cannot make us hammer the issuer. Default 30 s. */
  minRefreshIntervalMs?: number;
  /** How long keys from one successful fetch may be used. Refreshing starts at half this age. Default 5 min. */
  cacheMaxAgeMs?: number;
  /** A fetch that has not answered within this time fails. Default 5 s. */
  fetchTimeoutMs?: number;
}

/** Defaults of {@link RemoteKeySourceOptions} and the JWKS limits, in one place. */
export const JWKS_DEFAULTS = Object.freeze({
  minRefreshIntervalMs: 30_000,
  cacheMaxAgeMs: 5 * 60_000,
  fetchTimeoutMs: 5_000,
  /** A larger JWKS response is refused unread. */
  maxJwksBytes: 64 * 1024,
});

// Members that only a private (or symmetric) key carries. Publishing any of them means the key
// is compromised, so a set holding one is refused whole rather than filtered.
const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;
const REMOTE_OPTION_NAMES: ReadonlySet<string> = new Set([
  'fetch',
  'now',
  'minRefreshIntervalMs',
  'cacheMaxAgeMs',
  'fetchTimeoutMs',
]);

interface SigningJwk {
  kid: string;
  /** The JWS algorithm the key is imported for; the curve allows no other. */
  alg: 'EdDSA' | 'ES256';
  jwk: JWK;
}

/**
 * A key source over a fixed JWKS, validated and imported whole before it is returned.
 *
 * Only public signing keys are used: OKP `Ed25519` (alg `EdDSA`) and EC `P-256` (alg `ES256`)
 * with a `kid`, `use` absent or `sig`, `key_ops` absent or holding `verify`. Other keys are
 * skipped. A set that holds private key material in any entry, or two usable keys with one
 * `kid`, is refused.
 *
 * @throws JwksError when the set is refused.
 *
 * @example
 * ```ts
 * const keys = await localKeySource({ keys: [brokerPublicJwk] });
 * const verifier = createAccessTokenVerifier({ keys, ... });
 * ```
 */
export async function localKeySource(jwks: { keys: JWK[] }): Promise<KeySource> {
  const keys = await importSigningKeys(jwks);
  return { getKey: async (kid) => keys.get(kid) };
}

/**
 * A key source that fetches the issuer's JWKS (e.g. `<issuer>/.well-known/jwks.json`) and caches it.
 *
 * - The first `getKey` fetches. Keys from a successful fetch are used for `cacheMaxAgeMs`;
 *   from half that age on, a request refreshes them first, so a retired key disappears and an
 *   issuer outage shorter than half the max age is never felt.
 * - An unknown `kid` triggers a refetch (a rotation), but fetch attempts are at least
 *   `minRefreshIntervalMs` apart, whatever the traffic; concurrent callers share one fetch.
 * - A failed fetch (network, timeout, status other than 200, redirect, oversized or refused
 *   JWKS) keeps the known keys until their max age; after that `getKey` rejects with
 *   {@link KeySourceUnavailableError}: it fails closed.
 *
 * @example
 * ```ts
 * const keys = remoteKeySource('https://broker.example/.well-known/jwks.json', { now: Date.now });
 * ```
 */
export function remoteKeySource(url: string, options: RemoteKeySourceOptions): KeySource {
  // Not jose's createRemoteJWKSet (its customFetch would carry the size cap and the DPoP nonce):
  // it times its cache and cooldown with Date.now(), not the injected clock; its cooldown counts
  // from the last *successful* fetch, so while the issuer fails every call fetches again; it
  // neither refreshes ahead nor keeps the known keys when a refresh fails; and it checks one
  // selected key at use, where a set holding private material must be refused whole.
  const config = resolveRemoteOptions(url, options);
  let keys = new Map<string, CryptoKey>();
  let fetchedAt: number | undefined;
  let attemptedAt: number | undefined;
  let lastFailure: unknown;
  let inflight: Promise<void> | undefined;

  const refresh = (): Promise<void> => {
    if (inflight === undefined) {
      const startedAt = config.now();
      attemptedAt = startedAt;
      inflight = fetchSigningKeys(config)
        .then(
          (fresh) => {
            keys = fresh;
            // Age counts from when the request was sent: the answer is at least that old.
            fetchedAt = startedAt;
            lastFailure = undefined;
          },
          (failure: unknown) => {
            lastFailure = failure;
          },
        )
        .finally(() => {
          inflight = undefined;
        });
    }
    return inflight;
  };

  const ageAt = (now: number) => (fetchedAt === undefined ? Number.POSITIVE_INFINITY : now - fetchedAt);

  return {
    async getKey(kid: string): Promise<CryptoKey | undefined> {
      const now = config.now();
      // Until a first fetch has succeeded there is nothing to verify with: retry every second
      // (still bounded) rather than every `minRefreshIntervalMs`, so that a PEP started while
      // its broker was down serves within a second of the broker coming back.
      const interval =
        fetchedAt === undefined ? Math.min(1000, config.minRefreshIntervalMs) : config.minRefreshIntervalMs;
      const mayFetch = inflight !== undefined || attemptedAt === undefined || now - attemptedAt >= interval;
      if (mayFetch && (ageAt(now) >= config.cacheMaxAgeMs / 2 || !keys.has(kid))) await refresh();
      if (ageAt(config.now()) >= config.cacheMaxAgeMs) {
        throw new KeySourceUnavailableError(`no usable JWKS from ${config.url}`, { cause: lastFailure });
      }
      return keys.get(kid);
    },
  };
}

interface RemoteConfig {
  url: string;
  fetch: typeof fetch;
  now: () => number;
  minRefreshIntervalMs: number;
  cacheMaxAgeMs: number;
  fetchTimeoutMs: number;
}

// Misconfiguration is a programming error, reported at start-up.
function resolveRemoteOptions(url: string, options: RemoteKeySourceOptions): RemoteConfig {
  for (const name of Object.keys(options)) {
    if (!REMOTE_OPTION_NAMES.has(name)) throw new TypeError(`remoteKeySource: unknown option ${name}`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError('remoteKeySource: url must be an absolute URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new TypeError('remoteKeySource: url must be an http or https URL');
  }
  if (typeof options.now !== 'function') throw new TypeError('remoteKeySource: now must be a function');
  const minRefreshIntervalMs = options.minRefreshIntervalMs ?? JWKS_DEFAULTS.minRefreshIntervalMs;
  const cacheMaxAgeMs = options.cacheMaxAgeMs ?? JWKS_DEFAULTS.cacheMaxAgeMs;
  const fetchTimeoutMs = options.fetchTimeoutMs ?? JWKS_DEFAULTS.fetchTimeoutMs;
  for (const [name, value] of Object.entries({ minRefreshIntervalMs, cacheMaxAgeMs, fetchTimeoutMs })) {
    if (!Number.isFinite(value) || value <= 0)
      throw new TypeError(`remoteKeySource: ${name} must be positive`);
  }
  // Otherwise keys could reach their max age with no refresh allowed in between.
  if (minRefreshIntervalMs > cacheMaxAgeMs / 2) {
    throw new TypeError('remoteKeySource: minRefreshIntervalMs must be at most half of cacheMaxAgeMs');
  }
  return {
    url: parsed.href,
    fetch: options.fetch ?? fetch,
    now: options.now,
    minRefreshIntervalMs,
    cacheMaxAgeMs,
    fetchTimeoutMs,
  };
}

async function fetchSigningKeys(config: RemoteConfig): Promise<Map<string, CryptoKey>> {
  const response = await config.fetch(config.url, {
    headers: { accept: 'application/jwk-set+json, application/json' },
    // The JWKS is served where it is configured; following a redirect would let whoever
    // controls the redirect choose the keys.
    redirect: 'error',
    signal: AbortSignal.timeout(config.fetchTimeoutMs),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new JwksError(`GET ${config.url} answered ${response.status}`);
  }
  const text = await readLimited(response, JWKS_DEFAULTS.maxJwksBytes);
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (cause) {
    throw new JwksError(`GET ${config.url} did not answer JSON`, { cause });
  }
  return importSigningKeys(document);
}

async function readLimited(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > limit) {
    await response.body?.cancel();
    throw new JwksError(`the JWKS is larger than ${limit} bytes`);
  }
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new JwksError(`the JWKS is larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

async function importSigningKeys(document: unknown): Promise<Map<string, CryptoKey>> {
  const keys = new Map<string, CryptoKey>();
  for (const { kid, alg, jwk } of selectSigningKeys(document)) {
    let key: CryptoKey | Uint8Array;
    try {
      key = await importJWK(jwk, alg);
    } catch (cause) {
      throw new JwksError(`JWKS key ${JSON.stringify(kid)} is not a valid ${jwk.crv} public key`, { cause });
    }
    if (key instanceof Uint8Array || key.type !== 'public') {
      throw new JwksError(`JWKS key ${JSON.stringify(kid)} is not a public key`);
    }
    keys.set(kid, key);
  }
  return keys;
}

function selectSigningKeys(document: unknown): SigningJwk[] {
  if (!isObject(document) || !Array.isArray(document.keys)) {
    throw new JwksError('the JWKS is not a JSON object with a keys array');
  }
  const selected: SigningJwk[] = [];
  const kids = new Set<string>();
  document.keys.forEach((entry: unknown, index: number) => {
    if (!isObject(entry)) throw new JwksError(`JWKS entry ${index} is not a JSON object`);
    const privateMember = PRIVATE_JWK_MEMBERS.find((member) => Object.hasOwn(entry, member));
    if (privateMember !== undefined) {
      throw new JwksError(`JWKS entry ${index} holds private key material (member ${privateMember})`);
    }
    const usable = signingJwk(entry);
    if (usable === undefined) return;
    if (kids.has(usable.kid))
      throw new JwksError(`JWKS has two signing keys with kid ${JSON.stringify(usable.kid)}`);
    kids.add(usable.kid);
    selected.push(usable);
  });
  return selected;
}

/** The entry as a key to import, or `undefined` when it is not a public signing key we use. */
function signingJwk(entry: Record<string, unknown>): SigningJwk | undefined {
  const { kty, crv, x, y, kid, use, alg } = entry;
  const keyOps = entry['key_ops'];
  if (typeof kid !== 'string' || kid === '') return undefined;
  if (use !== undefined && use !== 'sig') return undefined;
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes('verify'))) return undefined;
  // Only the members that define the key are imported: nothing else in the entry can change it.
  if (kty === 'OKP' && crv === 'Ed25519' && typeof x === 'string') {
    if (alg !== undefined && alg !== 'EdDSA' && alg !== 'Ed25519') return undefined;
    return { kid, alg: 'EdDSA', jwk: { kty, crv, x } };
  }
  if (kty === 'EC' && crv === 'P-256' && typeof x === 'string' && typeof y === 'string') {
    if (alg !== undefined && alg !== 'ES256') return undefined;
    return { kid, alg: 'ES256', jwk: { kty, crv, x, y } };
  }
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
