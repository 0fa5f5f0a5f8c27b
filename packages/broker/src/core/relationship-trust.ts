import { TetherError } from '@tether-broker/protocol';
import { type Kek, openSecret, sealSecret } from '../config/key-encryption.js';
import { type Relationship, type RelationshipState, sealedContent } from '../domain/relationship.js';
import type { StoreHandle, TxHandle } from '../store/database.js';
import {
  findRelationship,
  insertRelationship,
  listRelationshipsOf,
  lockRelationship,
  type StoredRelationship,
  updateRelationship,
} from '../store/repositories/relationships.js';

/**
 * Relationships are trusted rows: one grants another tenant's people the right to ask for a
 * customer's privileges. Each row carries its trust-bearing fields sealed under the KEK and
 * bound to its id (`sealedContent`); a row whose seal does not open to exactly its fields —
 * forged, widened, re-activated or copied by someone with database access but not the KEK —
 * is refused (`relationship_tampered`) and grants nothing.
 */
const bindingOf = (id: string) => ({ relationship: id });

async function trusted(kek: Kek, stored: StoredRelationship): Promise<Relationship> {
  const r = stored.relationship;
  let opened: string | undefined;
  try {
    opened = await openSecret(kek, stored.seal, bindingOf(r.id));
  } catch {
    opened = undefined;
  }
  if (opened !== sealedContent(r))
    throw new TetherError(
      'relationship_tampered',
      `relationship ${r.name} was changed outside the broker; nothing is granted under it`,
    );
  return r;
}

const sealOf = (kek: Kek, r: Relationship) => sealSecret(kek, sealedContent(r), bindingOf(r.id));

export async function storeNewRelationship(h: StoreHandle, kek: Kek, r: Relationship): Promise<void> {
  await insertRelationship(h, r, await sealOf(kek, r));
}

export async function storeRelationship(tx: TxHandle, kek: Kek, r: Relationship): Promise<void> {
  await updateRelationship(tx, r, await sealOf(kek, r));
}

/** A relationship the tenant is a party to, verified; undefined when there is none. */
export async function readRelationship(
  h: StoreHandle,
  kek: Kek,
  tenantId: string,
  id: string,
): Promise<Relationship | undefined> {
  const stored = await findRelationship(h, tenantId, id);
  return stored && trusted(kek, stored);
}

/** Locks, reads and verifies a relationship the tenant is a party to. */
export async function lockTrustedRelationship(
  tx: TxHandle,
  kek: Kek,
  tenantId: string,
  id: string,
): Promise<Relationship | undefined> {
  const stored = await lockRelationship(tx, tenantId, id);
  return stored && trusted(kek, stored);
}

/**
 * The tenant's relationships, verified. A tampered row is left out of the answer (it grants
 * nothing and is reported by `readRelationship` to whoever names it), so one bad row does not
 * hide the others.
 */
export async function readRelationshipsOf(
  h: StoreHandle,
  kek: Kek,
  tenantId: string,
  filter: { state?: RelationshipState; counterpart?: string } = {},
): Promise<Relationship[]> {
  const out: Relationship[] = [];
  for (const stored of await listRelationshipsOf(h, tenantId, filter)) {
    try {
      out.push(await trusted(kek, stored));
    } catch (err) {
      if (!(err instanceof TetherError)) throw err;
    }
  }
  return out;
}
