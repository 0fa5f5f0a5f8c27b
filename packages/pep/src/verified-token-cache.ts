import type { TetherAccessClaims } from './access-token-claims.js';
import { sha256Base64url } from './web.js';

/** The cache key of a token: SHA-256 of its text, base64url. The token itself is never kept. */
export function tokenDigest(token: string): Promise<string> {
  return sha256Base64url(token);
}

/** A verified token: its claims and the `kid` its signature was checked with. */
export interface VerifiedTokenEntry {
  claims: TetherAccessClaims;
  kid: string;
}

/** Least-recently-used map from SHA-256(token) to its verified claims, each kept until `expiresAt`. */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, VerifiedTokenEntry & { expiresAt: number }>();
  readonly #maxEntries: number;
  /** The digest used last: already the most recently used, so a hit on it moves nothing. */
  #newest: string | undefined;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  get(digest: string, now: number): VerifiedTokenEntry | undefined {
    const entry = this.#entries.get(digest);
    if (entry === undefined) return undefined;
    if (now >= entry.expiresAt) {
      this.#entries.delete(digest);
      return undefined;
    }
    if (digest !== this.#newest) {
      this.#entries.delete(digest);
      this.#entries.set(digest, entry); // most recently used goes last
      this.#newest = digest;
    }
    return entry;
  }

  set(digest: string, token: VerifiedTokenEntry, expiresAt: number): void {
    if (this.#maxEntries === 0) return;
    this.#entries.delete(digest);
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(digest, { claims: token.claims, kid: token.kid, expiresAt });
    this.#newest = digest;
  }
}
