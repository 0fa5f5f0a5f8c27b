import type { CryptoKey, JWK } from 'jose';

/** A DPoP proof header that passed every header check, with its key imported and hashed. */
export interface CheckedProofHeader {
  alg: string;
  /** The header's `jwk`, frozen: it is shared by every proof carrying the same header. */
  jwk: JWK;
  key: CryptoKey;
  /** RFC 7638 SHA-256 thumbprint of `jwk`. */
  jkt: string;
}

/**
 * Checked proof headers by the exact text of their encoded protected header (the JWS's first
 * part). A session signs every proof with one key under one header, so without this a PEP would
 * decode the same header, import the same key and hash it again on every request. The same
 * bytes always decode to the same header, so every check on it (typ, alg, public jwk) gives the
 * same answer; only the `alg` allow-list, which differs between verifiers, is rechecked on a hit.
 *
 * Bounded in entries and in the size of what it keeps (a caller chooses the header), the least
 * recently used entry going first.
 */
export class ProofKeyCache {
  readonly #entries = new Map<string, CheckedProofHeader>();
  readonly #maxEntries: number;
  readonly #maxHeaderLength: number;
  /** The header used last: already the most recently used, so a hit on it moves nothing. */
  #newest: string | undefined;

  constructor(maxEntries: number, maxHeaderLength: number) {
    this.#maxEntries = maxEntries;
    this.#maxHeaderLength = maxHeaderLength;
  }

  get(encodedHeader: string): CheckedProofHeader | undefined {
    const entry = this.#entries.get(encodedHeader);
    if (entry === undefined) return undefined;
    if (encodedHeader !== this.#newest) {
      this.#entries.delete(encodedHeader);
      this.#entries.set(encodedHeader, entry); // most recently used goes last
      this.#newest = encodedHeader;
    }
    return entry;
  }

  set(encodedHeader: string, entry: CheckedProofHeader): void {
    if (encodedHeader.length > this.#maxHeaderLength) return;
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(encodedHeader, entry);
    this.#newest = encodedHeader;
  }
}
