import { TetherError } from '@tether/protocol';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from 'jose';
import type { Clock } from '../domain/clock.js';
import type { StoreHandle } from '../store/database.js';
import { type Kek, openSecret, sealSecret } from './key-encryption.js';

export const SIGNING_ALG = 'EdDSA';

export interface ActiveSigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

/** Creates the first signing key when the store has none. Idempotent. */
export async function ensureSigningKey(store: StoreHandle, kek: Kek, clock: Clock): Promise<void> {
  const existing = await store.db
    .selectFrom('signing_keys')
    .select('kid')
    .where('state', '=', 'active')
    .executeTakeFirst();
  if (existing) return;
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const sealed = await sealSecret(kek, JSON.stringify(await exportJWK(privateKey)));
  await store.db
    .insertInto('signing_keys')
    .values({
      kid,
      alg: SIGNING_ALG,
      public_jwk: JSON.stringify({ ...publicJwk, kid, alg: SIGNING_ALG, use: 'sig' }),
      private_jwk_enc: sealed,
      state: 'active',
      created_at: clock.now(),
      retire_at: null,
    })
    .onConflict((oc) => oc.column('kid').doNothing())
    .execute();
}

/**
 * The broker's signing keys, opened once and kept in memory. The newest active key signs;
 * every active key verifies and is published in the JWKS.
 */
export class SigningKeys {
  #signer: ActiveSigningKey | undefined;
  #publicJwks: JWK[] = [];
  #verifiers = new Map<string, CryptoKey>();

  constructor(
    private readonly store: StoreHandle,
    private readonly kek: Kek,
  ) {}

  async load(): Promise<void> {
    const rows = await this.store.db
      .selectFrom('signing_keys')
      .selectAll()
      .where('state', '=', 'active')
      .orderBy('created_at', 'desc')
      .execute();
    const newest = rows[0];
    if (!newest)
      throw new TetherError('store_unavailable', 'the store has no signing key; run `tether init` first');
    const privateJwk = JSON.parse(await openSecret(this.kek, newest.private_jwk_enc)) as JWK;
    const privateKey = (await importJWK(privateJwk, SIGNING_ALG)) as CryptoKey;
    const verifiers = new Map<string, CryptoKey>();
    const publicJwks: JWK[] = [];
    for (const row of rows) {
      const jwk = JSON.parse(row.public_jwk) as JWK;
      publicJwks.push(jwk);
      verifiers.set(row.kid, (await importJWK(jwk, SIGNING_ALG)) as CryptoKey);
    }
    this.#signer = { kid: newest.kid, privateKey, publicJwk: JSON.parse(newest.public_jwk) as JWK };
    this.#publicJwks = publicJwks;
    this.#verifiers = verifiers;
  }

  signer(): ActiveSigningKey {
    if (!this.#signer) throw new Error('signing keys not loaded');
    return this.#signer;
  }

  /** The public keys, as published at /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return { keys: this.#publicJwks.map((k) => ({ ...k })) };
  }

  verificationKey(kid: string): CryptoKey | undefined {
    return this.#verifiers.get(kid);
  }
}
