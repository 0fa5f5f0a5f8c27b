/** Thrown by {@link ReplayCache.checkAndRemember} when every slot holds an unexpired entry. */
export class ReplayCacheFullError extends Error {
  override readonly name = 'ReplayCacheFullError';

  constructor(maxEntries: number) {
    super(`replay cache is full (${maxEntries} unexpired entries)`);
  }
}

export interface ReplayCacheOptions {
  /** Upper bound on remembered keys; the cache never holds more. */
  maxEntries: number;
  /** Epoch milliseconds; inject a manual clock in tests. */
  now: () => number;
}

/**
 * Remembers single-use keys (DPoP proof `jti`s) until they expire, in bounded memory.
 *
 * An entry lives while `now() <= expiresAt`. Expired entries are dropped lazily, when room is
 * needed. When every slot holds an unexpired entry the cache **fails closed**: it refuses the
 * new key (throws {@link ReplayCacheFullError}) rather than forget an old one, because forgetting
 * a live key would let that proof be replayed. Under a flood the PEP then refuses new proofs
 * until the oldest entries expire — a bounded denial of service instead of a silent replay.
 *
 * @example
 * ```ts
 * const cache = new ReplayCache({ maxEntries: 100_000, now: Date.now });
 * cache.checkAndRemember('jkt.jti', Date.now() + 60_000); // true: first use
 * cache.checkAndRemember('jkt.jti', Date.now() + 60_000); // false: replay
 * ```
 */
export class ReplayCache {
  readonly #entries = new Map<string, number>();
  readonly #maxEntries: number;
  readonly #now: () => number;
  // No entry expires before this instant, so a full cache can refuse in O(1) until then
  // instead of sweeping every entry on every request.
  #earliestExpiry = Number.POSITIVE_INFINITY;

  constructor(options: ReplayCacheOptions) {
    if (!Number.isSafeInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError('ReplayCache maxEntries must be a positive integer');
    }
    this.#maxEntries = options.maxEntries;
    this.#now = options.now;
  }

  /** Entries currently held, including expired ones not yet swept. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Records `key` until `expiresAt` (epoch ms) and returns `true`, or returns `false` when the key
   * was already recorded and has not yet expired (a replay).
   *
   * @throws ReplayCacheFullError when the key is new and every slot holds an unexpired entry.
   */
  checkAndRemember(key: string, expiresAt: number): boolean {
    if (!Number.isFinite(expiresAt)) throw new RangeError('ReplayCache expiresAt must be a finite number');
    const now = this.#now();
    const seenUntil = this.#entries.get(key);
    if (seenUntil !== undefined && now <= seenUntil) return false;
    if (seenUntil === undefined && this.#entries.size >= this.#maxEntries) {
      this.#evictExpired(now);
      if (this.#entries.size >= this.#maxEntries) throw new ReplayCacheFullError(this.#maxEntries);
    }
    this.#entries.set(key, expiresAt);
    this.#earliestExpiry = Math.min(this.#earliestExpiry, expiresAt);
    return true;
  }

  #evictExpired(now: number): void {
    if (now <= this.#earliestExpiry) return;
    let earliest = Number.POSITIVE_INFINITY;
    for (const [key, expiresAt] of this.#entries) {
      if (now > expiresAt) this.#entries.delete(key);
      else earliest = Math.min(earliest, expiresAt);
    }
    this.#earliestExpiry = earliest;
  }
}
