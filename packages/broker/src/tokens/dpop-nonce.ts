import { hkdfSync } from 'node:crypto';
import { PepDpopNonces } from '@tether-broker/pep';
import type { Kek } from '../config/key-encryption.js';
import type { Clock } from '../domain/clock.js';

/**
 * Server-issued DPoP nonces (RFC 9449 §8): the enforcement points' stateless per-window nonces
 * ({@link PepDpopNonces}) under a key derived from the KEK, so every replica issues and accepts
 * the same ones. A proof may carry the current window's nonce or the previous one's, so a
 * nonce lives one to two windows; a proof cannot be signed ahead of time for later than that.
 */
export function brokerDpopNonces(kek: Kek, clock: Clock, windowSeconds = 60): PepDpopNonces {
  return new PepDpopNonces({
    now: () => clock.now(),
    windowSeconds,
    key: Buffer.from(hkdfSync('sha256', kek.key, 'tether', 'dpop-nonce', 32)),
    // 192 bits, as the broker's nonces have always been (32 base64url characters).
    bytes: 24,
  });
}
