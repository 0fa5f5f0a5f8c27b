import {
  CompactSign,
  type CryptoKey,
  calculateJwkThumbprint,
  compactVerify,
  importJWK,
  type JWK,
} from 'jose';
import { type Kek, openSecret, type SealBinding } from '../config/key-encryption.js';
import type { SigningKeyRow } from '../store/schema.js';

/**
 * How a signing key's private key is sealed, and the checks that decide whether a
 * `signing_keys` row is trusted at all (issue 9: a row in the database is not a key).
 */

const SIGNING_ALG = 'EdDSA';

/** `seal_version` of keys sealed with the KEK alone (before migration 0010); re-sealed at start. */
export const SEAL_LEGACY = 1;
/** `seal_version` of keys sealed with their kid and public-key thumbprint bound as AEAD data. */
export const SEAL_BOUND = 2;

/** Why a signing-key row is not trusted. Stable words: they label the metric. */
export type RejectionReason =
  | 'public_key_invalid' // not an Ed25519 public JWK
  | 'kid_mismatch' // the kid is not the public key's thumbprint
  | 'seal_does_not_open' // the sealed private key does not open with the KEK for this kid and public key
  | 'legacy_seal' // sealed without binding, found after start (a start re-seals the genuine ones)
  | 'private_key_mismatch'; // the private key inside is not the public key's

export class SigningKeyRejected extends Error {
  constructor(readonly reason: RejectionReason) {
    super(`signing key rejected: ${reason}`);
  }
}

/** What a sealed private key is bound to: the row's kid and its public key's thumbprint. */
export function bindingOf(kid: string, thumbprint: string): SealBinding {
  return { signing_kid: kid, signing_jkt: thumbprint };
}

export interface OpenedKey {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  /** The private JWK, for re-sealing a legacy row. Never logged. */
  privateJwkText: string;
}

const PROBE = new TextEncoder().encode('tether signing-key probe');

/**
 * Opens a row's sealed private key and checks that the row holds together: an Ed25519 public
 * key whose thumbprint is the kid, a private key that opens with the KEK bound to that kid and
 * thumbprint, and that signs what the public key verifies. A row a database writer inserted or
 * altered fails one of these; nothing about it is trusted. Legacy (unbound) seals are opened
 * only when `allowLegacy` (the re-seal at start).
 */
export async function openSigningKey(
  kek: Kek,
  row: Pick<SigningKeyRow, 'kid' | 'alg' | 'public_jwk' | 'private_jwk_enc' | 'seal_version'>,
  allowLegacy = false,
): Promise<OpenedKey> {
  let publicJwk: JWK;
  let publicKey: CryptoKey;
  let thumbprint: string;
  try {
    publicJwk = JSON.parse(row.public_jwk) as JWK;
    if (row.alg !== SIGNING_ALG || publicJwk.kty !== 'OKP' || publicJwk.crv !== 'Ed25519' || 'd' in publicJwk)
      throw new Error('not an Ed25519 public key');
    if (publicJwk.alg !== undefined && publicJwk.alg !== SIGNING_ALG) throw new Error('wrong alg');
    publicKey = (await importJWK(publicJwk, SIGNING_ALG)) as CryptoKey;
    thumbprint = await calculateJwkThumbprint(publicJwk);
  } catch {
    throw new SigningKeyRejected('public_key_invalid');
  }
  if (row.kid !== thumbprint || (publicJwk.kid !== undefined && publicJwk.kid !== row.kid))
    throw new SigningKeyRejected('kid_mismatch');
  let privateJwkText: string;
  if (row.seal_version === SEAL_BOUND) {
    privateJwkText = await openSecret(kek, row.private_jwk_enc, bindingOf(row.kid, thumbprint)).catch(() => {
      throw new SigningKeyRejected('seal_does_not_open');
    });
  } else if (row.seal_version === SEAL_LEGACY && allowLegacy) {
    privateJwkText = await openSecret(kek, row.private_jwk_enc).catch(() => {
      throw new SigningKeyRejected('seal_does_not_open');
    });
  } else {
    throw new SigningKeyRejected('legacy_seal');
  }
  let privateKey: CryptoKey;
  try {
    const privateJwk = JSON.parse(privateJwkText) as JWK;
    if (privateJwk.x !== publicJwk.x) throw new Error('other key');
    privateKey = (await importJWK(privateJwk, SIGNING_ALG)) as CryptoKey;
    // The JWK's x is only a claim: a signature proves d is the private half of this public key.
    const probe = await new CompactSign(PROBE).setProtectedHeader({ alg: SIGNING_ALG }).sign(privateKey);
    await compactVerify(probe, publicKey, { algorithms: [SIGNING_ALG] });
  } catch {
    throw new SigningKeyRejected('private_key_mismatch');
  }
  return { privateKey, publicKey, publicJwk, privateJwkText };
}
