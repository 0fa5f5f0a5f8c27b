import { randomUUID } from 'node:crypto';
import type { IdentityFile } from '@tether-broker/protocol';
import type { JWK } from 'jose';
import { SignJWT } from 'jose/jwt/sign';
import { importJWK } from 'jose/key/import';

/** RFC 7523 client assertion for `private_key_jwt`: `iss` = `sub` = the principal, one-time `jti`. */
export async function createClientAssertion(
  identity: IdentityFile,
  options: { audience: string; lifetimeSeconds?: number; now?: number },
): Promise<string> {
  const jwk = identity.key as JWK;
  const alg = jwk.kty === 'OKP' ? 'EdDSA' : jwk.crv === 'P-384' ? 'ES384' : 'ES256';
  const key = await importJWK(jwk, alg);
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg, typ: 'JWT', ...(jwk.kid ? { kid: jwk.kid } : {}) })
    .setIssuer(identity.principal)
    .setSubject(identity.principal)
    .setAudience(options.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.lifetimeSeconds ?? 60))
    .setJti(randomUUID())
    .sign(key);
}
