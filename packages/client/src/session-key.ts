import type { CryptoKey, JWK } from 'jose';
import { calculateJwkThumbprint } from 'jose/jwk/thumbprint';
import { exportJWK } from 'jose/key/export';
import { generateKeyPair } from 'jose/key/generate/keypair';
import { importJWK } from 'jose/key/import';

/** A proof-of-possession key: the private half signs DPoP proofs, `jkt` names it in tokens. */
export interface SessionKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** RFC 7638 thumbprint of the public key: the session's `cnf.jkt`. */
  jkt: string;
  alg: 'EdDSA';
}

/**
 * A fresh Ed25519 session key. Non-extractable by default: the private key cannot leave the
 * process even by mistake. Pass `extractable: true` only to persist it (the CLI does, 0600).
 */
export async function generateSessionKey(options: { extractable?: boolean } = {}): Promise<SessionKey> {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', {
    extractable: options.extractable ?? false,
  });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk), alg: 'EdDSA' };
}

/** Re-creates a session key from a stored private JWK. */
export async function sessionKeyFromJwk(privateJwk: JWK): Promise<SessionKey> {
  const { d: _d, ...publicJwk } = privateJwk;
  const privateKey = (await importJWK(privateJwk, 'EdDSA')) as CryptoKey;
  const pub: JWK = { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x };
  return { privateKey, publicJwk: pub, jkt: await calculateJwkThumbprint(pub), alg: 'EdDSA' };
}

/** The private JWK of an extractable key, to store (mode 0600) and reload later. */
export async function exportSessionKey(key: SessionKey): Promise<JWK> {
  return exportJWK(key.privateKey);
}
