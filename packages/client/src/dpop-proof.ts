import { createHash, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose/jwt/sign';
import type { SessionKey } from './session-key.js';

/** base64url(SHA-256(token)): the `ath` claim binding a proof to the token it accompanies. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

export interface ProofTarget {
  method: string;
  /** Absolute URL; query and fragment are dropped, as RFC 9449 §4.2 says. */
  url: string;
  accessToken?: string;
  nonce?: string;
  now?: number;
}

/** An RFC 9449 DPoP proof for one request. */
export async function createDpopProof(key: SessionKey, target: ProofTarget): Promise<string> {
  const url = new URL(target.url);
  const htu = `${url.origin}${url.pathname}`;
  return new SignJWT({
    htm: target.method.toUpperCase(),
    htu,
    ...(target.accessToken ? { ath: accessTokenHash(target.accessToken) } : {}),
    ...(target.nonce ? { nonce: target.nonce } : {}),
  })
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk })
    .setJti(randomUUID())
    .setIssuedAt(Math.floor((target.now ?? Date.now()) / 1000))
    .sign(key.privateKey);
}
