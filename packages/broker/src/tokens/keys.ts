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
import type { RevocationFanout } from '../revocation/fanout.js';
import {
  announceOnCommit,
  appendRevocationEventToEveryTenant,
  type RevocationLogEntry,
} from '../revocation/log.js';
import { inTransaction, type StoreHandle } from '../store/database.js';
import { type Kek, openSecret, sealSecret } from './key-encryption.js';

export const SIGNING_ALG = 'EdDSA';

/** How long a replaced key keeps verifying: at least the longest access-token lifetime. */
export const DEFAULT_ROTATION_OVERLAP_SECONDS = 3600;

export interface ActiveSigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function newSealedKey(kek: Kek, now: number) {
  const { privateKey, publicKey } = await generateKeyPair('Ed25519', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    kid,
    alg: SIGNING_ALG,
    public_jwk: JSON.stringify({ ...publicJwk, kid, alg: SIGNING_ALG, use: 'sig' }),
    private_jwk_enc: await sealSecret(kek, JSON.stringify(await exportJWK(privateKey))),
    state: 'active',
    created_at: now,
    retire_at: null,
  };
}

/** Creates the first signing key when the store has none. Idempotent. */
export async function ensureSigningKey(store: StoreHandle, kek: Kek, clock: Clock): Promise<void> {
  const existing = await store.db
    .selectFrom('signing_keys')
    .select('kid')
    .where('state', '=', 'active')
    .executeTakeFirst();
  if (existing) return;
  await store.db
    .insertInto('signing_keys')
    .values(await newSealedKey(kek, clock.now()))
    .onConflict((oc) => oc.column('kid').doNothing())
    .execute();
}

/**
 * Puts a new key in charge of signing. The keys it replaces keep verifying (and stay in the
 * JWKS) for `overlapSeconds`, so tokens they signed stay valid until they expire; after
 * that they are retired and verify nothing.
 */
export async function rotateSigningKey(
  store: StoreHandle,
  kek: Kek,
  clock: Clock,
  overlapSeconds = DEFAULT_ROTATION_OVERLAP_SECONDS,
): Promise<{ kid: string; retiring: string[]; retireAt: number }> {
  const now = clock.now();
  const fresh = await newSealedKey(kek, now);
  const retireAt = now + overlapSeconds * 1000;
  return inTransaction(store, async (tx) => {
    const replaced = await tx.db
      .selectFrom('signing_keys')
      .select('kid')
      .where('state', '=', 'active')
      .execute();
    await tx.db
      .updateTable('signing_keys')
      .set({ state: 'retiring', retire_at: retireAt })
      .where('state', '=', 'active')
      .execute();
    await tx.db.insertInto('signing_keys').values(fresh).execute();
    return { kid: fresh.kid, retiring: replaced.map((r) => r.kid), retireAt };
  });
}

/**
 * Marks retiring keys whose overlap has ended as retired, and in the same transaction appends
 * a `key_retired` event to the revocation log of every tenant: keys are broker-wide, every
 * tenant's PEPs verify with them, and no event crosses tenants, so each log gets its own copy.
 * A tenant created later never held a token of the key (only the active key signs, and a
 * retiring key is never active again). Returns the kids, each retired exactly once even when
 * replicas sweep at the same time. `fanout`, when given, wakes this process's streams after
 * the commit; streams pick the events up at their next heartbeat in any case.
 */
export async function retireExpiredKeys(
  store: StoreHandle,
  now: number,
  fanout?: RevocationFanout,
): Promise<string[]> {
  return inTransaction(store, async (tx) => {
    // One statement decides and marks: a concurrent sweep finds the rows no longer retiring.
    const retired = await tx.db
      .updateTable('signing_keys')
      .set({ state: 'retired' })
      .where('state', '=', 'retiring')
      .where('retire_at', '<=', now)
      .returning('kid')
      .execute();
    const kids = retired.map((r) => r.kid).sort();
    const entries: RevocationLogEntry[] = [];
    for (const kid of kids)
      entries.push(
        ...(await appendRevocationEventToEveryTenant(tx, now, { type: 'key_retired', data: { kid } })),
      );
    if (fanout) announceOnCommit(tx, fanout, entries);
    return kids;
  });
}

/**
 * The broker's signing keys, opened once and kept in memory. The newest active key signs;
 * active keys and retiring keys still inside their overlap verify and are published in the
 * JWKS; nothing else is. `load()` again picks up a rotation (replicas do it on every sweep).
 */
export class SigningKeys {
  #signer: ActiveSigningKey | undefined;
  #publicJwks: JWK[] = [];
  #verifiers = new Map<string, { key: CryptoKey; retireAt: number | null }>();

  constructor(
    private readonly store: StoreHandle,
    private readonly kek: Kek,
    private readonly clock: Clock,
  ) {}

  async load(): Promise<void> {
    const rows = await this.store.db
      .selectFrom('signing_keys')
      .selectAll()
      .where('state', 'in', ['active', 'retiring'])
      .orderBy('created_at', 'desc')
      .execute();
    const newest = rows.find((r) => r.state === 'active');
    if (!newest)
      throw new TetherError('store_unavailable', 'the store has no signing key; run `tether init` first');
    if (newest.kid !== this.#signer?.kid) {
      const privateJwk = JSON.parse(await openSecret(this.kek, newest.private_jwk_enc)) as JWK;
      this.#signer = {
        kid: newest.kid,
        privateKey: (await importJWK(privateJwk, SIGNING_ALG)) as CryptoKey,
        publicJwk: JSON.parse(newest.public_jwk) as JWK,
      };
    }
    const verifiers = new Map<string, { key: CryptoKey; retireAt: number | null }>();
    for (const row of rows) {
      const key =
        this.#verifiers.get(row.kid)?.key ??
        ((await importJWK(JSON.parse(row.public_jwk) as JWK, SIGNING_ALG)) as CryptoKey);
      verifiers.set(row.kid, { key, retireAt: row.state === 'retiring' ? row.retire_at : null });
    }
    this.#verifiers = verifiers;
    this.#publicJwks = rows.map((r) => JSON.parse(r.public_jwk) as JWK);
  }

  signer(): ActiveSigningKey {
    if (!this.#signer) throw new Error('signing keys not loaded');
    return this.#signer;
  }

  #inService(kid: string): boolean {
    const entry = this.#verifiers.get(kid);
    return entry !== undefined && (entry.retireAt === null || this.clock.now() < entry.retireAt);
  }

  /** The public keys in service, as published at /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return {
      keys: this.#publicJwks
        .filter((k) => k.kid !== undefined && this.#inService(k.kid))
        .map((k) => ({ ...k })),
    };
  }

  /** The key that verifies `kid`, if it is still in service (a retired key verifies nothing). */
  verificationKey(kid: string): CryptoKey | undefined {
    return this.#inService(kid) ? this.#verifiers.get(kid)?.key : undefined;
  }
}
