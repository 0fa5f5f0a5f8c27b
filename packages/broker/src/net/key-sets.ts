import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey, errors as joseErrors } from 'jose';
import type { Logger } from 'pino';
import type { OutboundClient } from './outbound.js';
import { Unreachable } from './outbound.js';

/**
 * How a remote JWKS (a trust record's or a signal transmitter's `jwks_uri`) is fetched and kept.
 * The fetch is triggered by callers the broker does not know yet (a token exchange, a pushed
 * SET), so it is rationed per key source: at most one attempt per `cooldownMs`, whether the last
 * one worked or not; a token naming a key the set lacks refetches only then (an issuer's
 * rotation is picked up; a flood of unknown `kid`s costs one fetch per window). A set is kept
 * `maxAgeMs`, and a set already fetched keeps serving while the issuer is unreachable.
 */
export const REMOTE_KEYS = {
  cooldownMs: 30_000,
  maxAgeMs: 10 * 60_000,
  timeoutMs: 5000,
  /** A JWKS document larger than this is cut off and not used (real ones are a few KiB). */
  maxBytes: 64 * 1024,
} as const;

/** Where a record's keys come from: inline, or a URL. */
export interface KeySource {
  id: string;
  jwksUri: string | null;
  jwks: { keys: Record<string, unknown>[] } | null;
}

interface Deps {
  outbound: OutboundClient;
  now: () => number;
  logger?: Pick<Logger, 'warn'> | undefined;
}

function isJwksLike(value: unknown): value is JSONWebKeySet {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as { keys?: unknown }).keys) &&
    (value as { keys: unknown[] }).keys.every((k) => typeof k === 'object' && k !== null && !Array.isArray(k))
  );
}

/** One remote set: fetched through the outbound client, rationed per {@link REMOTE_KEYS}. */
class RemoteKeys {
  #local: JWTVerifyGetKey | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #attemptedAt = Number.NEGATIVE_INFINITY;
  #pending: Promise<boolean> | undefined;

  constructor(
    readonly id: string,
    readonly uri: string,
    readonly deps: Deps,
  ) {}

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (!this.#local || this.deps.now() - this.#fetchedAt >= REMOTE_KEYS.maxAgeMs) await this.#refresh();
    const local = this.#local;
    if (!local) throw new Unreachable('no key set fetched yet');
    try {
      return await local(header, token);
    } catch (err) {
      if (err instanceof joseErrors.JWKSNoMatchingKey && (await this.#refresh()) && this.#local)
        return this.#local(header, token);
      throw err;
    }
  };

  /** Fetches the set again if the window allows; true when a new set came. Concurrent callers share one fetch. */
  #refresh(): Promise<boolean> {
    if (this.#pending) return this.#pending;
    const now = this.deps.now();
    if (now - this.#attemptedAt < REMOTE_KEYS.cooldownMs) return Promise.resolve(false);
    // The attempt counts before it is made: a failing fetch is rationed like a working one.
    this.#attemptedAt = now;
    this.#pending = this.#fetch()
      .then((jwks) => {
        this.#local = createLocalJWKSet(jwks);
        this.#fetchedAt = now;
        return true;
      })
      .catch((err: unknown) => {
        this.deps.logger?.warn(
          { keys: this.id, reason: err instanceof Unreachable ? err.reason : String(err) },
          'remote JWKS fetch failed',
        );
        return false;
      })
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }

  async #fetch(): Promise<JSONWebKeySet> {
    const response = await this.deps.outbound.request(this.uri, {
      headers: { accept: 'application/jwk-set+json, application/json' },
      timeoutMs: REMOTE_KEYS.timeoutMs,
      maxBytes: REMOTE_KEYS.maxBytes,
    });
    if (response.status !== 200) throw new Unreachable(`HTTP ${response.status}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(response.body.toString('utf8'));
    } catch {
      throw new Unreachable('not JSON');
    }
    // A body that is not a key set reads as unreachable too: what a URL serves is not told back.
    if (!isJwksLike(parsed)) throw new Unreachable('not a JWKS');
    return parsed;
  }
}

/**
 * Key resolvers per record (trust record or signal transmitter), shared by token exchange and
 * signal intake: a remote set is fetched once and reused. An entry is replaced when its record's
 * key source changes; the oldest goes when the cache is full.
 */
export class KeySets {
  readonly #entries = new Map<string, { source: string; keys: JWTVerifyGetKey }>();
  readonly #capacity: number;
  readonly #deps: Deps;

  constructor(deps: Deps, capacity = 1024) {
    this.#deps = deps;
    this.#capacity = capacity;
  }

  /** The key resolver for a record: its inline set, or its remote set (fetched lazily). */
  keysFor(record: KeySource): JWTVerifyGetKey {
    const source = record.jwksUri ?? JSON.stringify(record.jwks);
    const cached = this.#entries.get(record.id);
    if (cached && cached.source === source) return cached.keys;
    const keys = record.jwksUri
      ? new RemoteKeys(record.id, record.jwksUri, this.#deps).getKey
      : createLocalJWKSet((record.jwks ?? { keys: [] }) as JSONWebKeySet);
    this.#entries.delete(record.id);
    if (this.#entries.size >= this.#capacity) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(record.id, { source, keys });
    return keys;
  }

  /** Drops a record's keys (when the record is deleted). */
  forget(id: string): void {
    this.#entries.delete(id);
  }
}
