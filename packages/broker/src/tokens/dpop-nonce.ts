import { createHmac, hkdfSync } from 'node:crypto';
import type { Clock } from '../domain/clock.js';
import type { Kek } from './key-encryption.js';

/**
 * Server-issued DPoP nonces (RFC 9449 §8), stateless so every replica agrees: the nonce of a
 * time window is an HMAC of the window's number under a key derived from the KEK. A proof may
 * carry the current window's nonce or the previous one's, so a nonce lives one to two
 * windows; a proof cannot be signed ahead of time for later than that.
 */
export class DpopNonces {
  readonly #secret: Buffer;

  constructor(
    kek: Kek,
    private readonly clock: Clock,
    private readonly windowSeconds = 60,
  ) {
    this.#secret = Buffer.from(hkdfSync('sha256', kek.key, 'tether', 'dpop-nonce', 32));
  }

  #forWindow(window: number): string {
    return createHmac('sha256', this.#secret).update(`dpop-nonce:${window}`).digest('base64url').slice(0, 32);
  }

  #window(): number {
    return Math.floor(this.clock.now() / (this.windowSeconds * 1000));
  }

  /** The nonce to hand out now (in the `DPoP-Nonce` header). */
  current(): string {
    return this.#forWindow(this.#window());
  }

  /**
   * The nonce a proof must carry: its own, when that is the current or the previous window's,
   * else the current one — so the check fails with `use_dpop_nonce` and the client retries.
   */
  expectedFor(proofNonce: unknown): string {
    const window = this.#window();
    const accepted = [this.#forWindow(window), this.#forWindow(window - 1)];
    return typeof proofNonce === 'string' && accepted.includes(proofNonce)
      ? proofNonce
      : (accepted[0] as string);
  }
}
