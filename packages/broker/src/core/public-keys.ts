import { TetherError } from '@tether-broker/protocol';
import { calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import { hasPrivateMembers } from '../domain/principal.js';

/** Key types a principal may register: asymmetric signature keys only. */
const ACCEPTED_KEYS: Record<string, string[]> = { OKP: ['Ed25519'], EC: ['P-256', 'P-384'] };

/**
 * Checks that a JWK is a public signature key we accept and returns its canonical public
 * form with its RFC 7638 thumbprint. A private key is refused without echoing any of it.
 */
export async function acceptPublicKey(
  jwk: Record<string, unknown>,
): Promise<{ kid: string; publicJwk: JWK }> {
  if (hasPrivateMembers(jwk)) {
    throw new TetherError(
      'invalid_key',
      'that is a private key; register the public key only (the private key never leaves its holder)',
    );
  }
  const kty = typeof jwk.kty === 'string' ? jwk.kty : '';
  const crv = typeof jwk.crv === 'string' ? jwk.crv : '';
  if (!ACCEPTED_KEYS[kty]?.includes(crv)) {
    throw new TetherError('invalid_key', 'only Ed25519 (OKP) and P-256/P-384 (EC) public keys are accepted');
  }
  const publicJwk: JWK =
    kty === 'OKP' ? { kty, crv, x: jwk.x as string } : { kty, crv, x: jwk.x as string, y: jwk.y as string };
  try {
    await importJWK(publicJwk, kty === 'OKP' ? 'EdDSA' : crv === 'P-256' ? 'ES256' : 'ES384');
    return { kid: await calculateJwkThumbprint(publicJwk), publicJwk };
  } catch {
    throw new TetherError('invalid_key', 'the key material is not a valid public key');
  }
}
