import { recordAuditInEveryTenant } from '../audit/record.js';
import { type Kek, sealSecret } from '../config/key-encryption.js';
import type { Clock } from '../domain/clock.js';
import type { RevocationFanout } from '../revocation/fanout.js';
import {
  announceOnCommit,
  appendRevocationEventToEveryTenant,
  type RevocationLogEntry,
} from '../revocation/log.js';
import { inTransaction, type StoreHandle } from '../store/database.js';
import { DEFAULT_ROTATION_OVERLAP_SECONDS, keyEvent, newSealedKey } from '../tokens/keys.js';
import {
  bindingOf,
  type OpenedKey,
  openSigningKey,
  SEAL_BOUND,
  SEAL_LEGACY,
} from '../tokens/signing-key-seal.js';

/**
 * Signing-key lifecycle: creating the first key, re-sealing legacy rows, rotating and retiring.
 * Each step is a transaction that records the change in every tenant's audit chain (and, for
 * retirement, in every tenant's revocation log); the key material itself is `tokens/keys.ts`.
 */

/** Creates the first signing key when the store has none. Idempotent. */
export async function ensureSigningKey(store: StoreHandle, kek: Kek, clock: Clock): Promise<void> {
  const existing = await store.db
    .selectFrom('signing_keys')
    .select('kid')
    .where('state', '=', 'active')
    .executeTakeFirst();
  if (existing) return;
  const fresh = await newSealedKey(kek, clock.now());
  await inTransaction(store, async (tx) => {
    const inserted = await tx.db
      .insertInto('signing_keys')
      .values(fresh)
      .onConflict((oc) => oc.column('kid').doNothing())
      .returning('kid')
      .execute();
    if (inserted.length > 0)
      await recordAuditInEveryTenant(
        tx,
        clock.now(),
        keyEvent('signing_key.created', fresh.kid, 'success', {}),
      );
  });
}

/**
 * Re-seals the signing keys sealed before migration 0010 with their kid and public key bound
 * as associated data, each only after it proved to be genuine (it opens with the KEK, and its
 * private key is its public key's). Runs at start, before the keys are loaded. A row that fails
 * stays as it is and is rejected by {@link SigningKeys.load}, loudly. Answers the kids re-sealed.
 */
export async function resealLegacySigningKeys(store: StoreHandle, kek: Kek, clock: Clock): Promise<string[]> {
  const rows = await store.db
    .selectFrom('signing_keys')
    .selectAll()
    .where('seal_version', '=', SEAL_LEGACY)
    .execute();
  const resealed: string[] = [];
  for (const row of rows) {
    let opened: OpenedKey;
    try {
      opened = await openSigningKey(kek, row, true);
    } catch {
      continue;
    }
    const sealed = await sealSecret(kek, opened.privateJwkText, bindingOf(row.kid, row.kid));
    await inTransaction(store, async (tx) => {
      const updated = await tx.db
        .updateTable('signing_keys')
        .set({ private_jwk_enc: sealed, seal_version: SEAL_BOUND })
        .where('kid', '=', row.kid)
        .where('seal_version', '=', SEAL_LEGACY)
        .where('private_jwk_enc', '=', row.private_jwk_enc)
        .where('public_jwk', '=', row.public_jwk)
        .returning('kid')
        .execute();
      if (updated.length === 0) return;
      resealed.push(row.kid);
      await recordAuditInEveryTenant(
        tx,
        clock.now(),
        keyEvent('signing_key.resealed', row.kid, 'success', {}),
      );
    });
  }
  return resealed;
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
    const retiring = replaced.map((r) => r.kid);
    await recordAuditInEveryTenant(
      tx,
      now,
      keyEvent('signing_key.rotated', fresh.kid, 'success', { retiring, retire_at: retireAt }),
    );
    return { kid: fresh.kid, retiring, retireAt };
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
    for (const kid of kids) {
      entries.push(
        ...(await appendRevocationEventToEveryTenant(tx, now, { type: 'key_retired', data: { kid } })),
      );
      await recordAuditInEveryTenant(tx, now, keyEvent('signing_key.retired', kid, 'success', {}));
    }
    if (fanout) announceOnCommit(tx, fanout, entries);
    return kids;
  });
}
