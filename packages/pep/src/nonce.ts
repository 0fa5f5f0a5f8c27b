import { createHmac, randomBytes } from 'node:crypto';

/**
 * The enforcer's `dpopNonce` option: require proofs to carry a nonce this enforcement point
 * issued (RFC 9449 §9, resource-server-provided nonce).
 */
export interface DpopNonceOptions {
  /** Refuse proofs without a nonce this PEP issued (`401`, `use_dpop_nonce`). */
  required: boolean;
  /** A nonce is handed out for this long and accepted for one more window. Default 300. */
  windowSeconds?: number;
}

export const DPOP_NONCE_DEFAULTS = Object.freeze({
  windowSeconds: 300,
  /** Shorter windows only add round trips; longer ones keep a nonce alive past any use. */
  minWindowSeconds: 1,
  maxWindowSeconds: 3600,
});

// 128 bits of HMAC-SHA256: unforgeable without the key, short enough for every header.
const NONCE_BYTES = 16;

/**
 * Nonces of one enforcement point, stateless: the nonce of time window `w` is
 * HMAC-SHA256(key, w), truncated to 128 bits, base64url. The key is 32 random bytes drawn when
 * the PEP is created and never stored or shared, so:
 *
 * - a proof made for another PEP (another gateway of the same audience) carries a nonce this
 *   one never issued, and is refused;
 * - a proof made before this process started carries a nonce of the previous key, and is
 *   refused: a restart cannot revive proofs, although the in-memory `jti` cache was lost.
 *
 * Within one process the `jti` replay cache makes each proof single-use; the nonce only ties
 * the proof to this process. A nonce is the current window's or the previous one's, so a
 * nonce handed out lives one to two windows. Nonces are not secrets (any caller gets one by
 * asking), so comparing them needs no constant-time compare; forging one needs the key.
 *
 * Cost per request: two string comparisons of the proof's already verified `nonce` claim
 * (passed to the verifier as a check function); the HMAC runs once per window (cached).
 *
 * @example
 * ```ts
 * const nonces = new PepDpopNonces({ now: Date.now, windowSeconds: 300 });
 * await verifyDpopProof(req.headers.dpop, { method, url, nonce: (n) => nonces.expectedFor(n) }, options);
 * res.setHeader('dpop-nonce', nonces.current());
 * ```
 */
export class PepDpopNonces {
  readonly windowMs: number;
  readonly #key: Uint8Array;
  readonly #bytes: number;
  readonly #now: () => number;
  #window = Number.NaN;
  #current = '';
  #previous = '';

  /**
   * `key`: the HMAC key, when several processes must issue the same nonces (the broker's
   * replicas derive it from the KEK). Without it a random key is drawn, for this process alone.
   * `bytes`: how much of the HMAC a nonce carries (default 16, 128 bits).
   */
  constructor(options: { now: () => number; windowSeconds?: number; key?: Uint8Array; bytes?: number }) {
    const seconds = options.windowSeconds ?? DPOP_NONCE_DEFAULTS.windowSeconds;
    if (
      !Number.isFinite(seconds) ||
      seconds < DPOP_NONCE_DEFAULTS.minWindowSeconds ||
      seconds > DPOP_NONCE_DEFAULTS.maxWindowSeconds
    ) {
      throw new TypeError(
        `dpopNonce.windowSeconds must be from ${DPOP_NONCE_DEFAULTS.minWindowSeconds} to ${DPOP_NONCE_DEFAULTS.maxWindowSeconds}`,
      );
    }
    this.windowMs = seconds * 1000;
    this.#now = options.now;
    this.#key = options.key ?? randomBytes(32);
    this.#bytes = options.bytes ?? NONCE_BYTES;
  }

  /** The nonce to hand out now (`DPoP-Nonce` header). */
  current(): string {
    this.#roll();
    return this.#current;
  }

  /** Whether `nonce` is one this PEP issued and still accepts (this window's or the previous one's). */
  accepts(nonce: unknown): nonce is string {
    this.#roll();
    return typeof nonce === 'string' && (nonce === this.#current || nonce === this.#previous);
  }

  /**
   * The nonce a proof must carry: its own when this PEP accepts it, else the current one — so
   * the verifier refuses with `use_dpop_nonce` and the client retries with the header's value.
   */
  expectedFor(proofNonce: unknown): string {
    return this.accepts(proofNonce) ? proofNonce : this.current();
  }

  #roll(): void {
    const window = Math.floor(this.#now() / this.windowMs);
    if (window === this.#window) return;
    this.#previous = window - 1 === this.#window ? this.#current : this.#forWindow(window - 1);
    this.#current = this.#forWindow(window);
    this.#window = window;
  }

  #forWindow(window: number): string {
    return createHmac('sha256', this.#key)
      .update(`tether-pep-dpop-nonce:${window}`)
      .digest()
      .subarray(0, this.#bytes)
      .toString('base64url');
  }
}
