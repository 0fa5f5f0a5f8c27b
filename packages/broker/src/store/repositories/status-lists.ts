import { randomInt } from 'node:crypto';
import type { StoreHandle, TxHandle } from '../database.js';

export interface StatusListInfo {
  id: number;
  tenantId: string;
  bits: number;
  size: number;
  /** Moves whenever what the published list encodes changes. */
  version: number;
}

const info = (r: {
  id: number;
  tenant_id: string;
  bits: number;
  size: number;
  version: number;
}): StatusListInfo => ({
  id: r.id,
  tenantId: r.tenant_id,
  bits: r.bits,
  size: r.size,
  version: Number(r.version),
});

export async function tenantStatusLists(h: StoreHandle, tenantId: string): Promise<StatusListInfo[]> {
  const rows = await h.db
    .selectFrom('status_lists')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('id')
    .execute();
  return rows.map(info);
}

export async function findStatusList(h: StoreHandle, id: number): Promise<StatusListInfo | undefined> {
  const r = await h.db.selectFrom('status_lists').selectAll().where('id', '=', id).executeTakeFirst();
  return r && info(r);
}

/**
 * New list ids are random, not sequential: concurrent first activations in two tenants cannot
 * collide on `max(id)+1`, and the ids reveal nothing about how many lists exist.
 */
export async function createStatusList(
  tx: TxHandle,
  tenantId: string,
  bits: number,
  size: number,
  at: number,
): Promise<StatusListInfo> {
  for (;;) {
    const id = randomInt(1, 2 ** 31 - 1);
    const taken = await tx.db.selectFrom('status_lists').select('id').where('id', '=', id).executeTakeFirst();
    if (taken) continue;
    await tx.db
      .insertInto('status_lists')
      .values({ id, tenant_id: tenantId, bits, size, created_at: at, version: 0 })
      .execute();
    return { id, tenantId, bits, size, version: 0 };
  }
}

/** Slots still held: a slot past `reusable_at` is free to take again and does not count. */
export async function countOccupiedSlots(h: StoreHandle, listId: number, now: number): Promise<number> {
  const row = await h.db
    .selectFrom('status_list_slots')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('list_id', '=', listId)
    .where('reusable_at', '>', now)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export async function findSlot(h: StoreHandle, listId: number, idx: number) {
  return h.db
    .selectFrom('status_list_slots')
    .selectAll()
    .where('list_id', '=', listId)
    .where('idx', '=', idx)
    .executeTakeFirst();
}

export async function deleteSlot(tx: TxHandle, listId: number, idx: number): Promise<void> {
  const gone = await tx.db
    .deleteFrom('status_list_slots')
    .where('list_id', '=', listId)
    .where('idx', '=', idx)
    .returning('status')
    .executeTakeFirst();
  // A flagged entry's bit clears when its slot is reused.
  if (gone && gone.status !== 0) await bumpVersion(tx, listId);
}

export async function insertSlot(
  tx: TxHandle,
  slot: { listId: number; idx: number; tenantId: string; sessionId: string; reusableAt: number },
): Promise<void> {
  await tx.db
    .insertInto('status_list_slots')
    .values({
      list_id: slot.listId,
      idx: slot.idx,
      tenant_id: slot.tenantId,
      session_id: slot.sessionId,
      status: 0,
      reusable_at: slot.reusableAt,
    })
    .execute();
}

/** Moves when the session's slot may be reused (its hard expiry moved later). Only the session's own slot. */
export async function setSlotReusableAt(
  tx: TxHandle,
  slot: { listId: number; idx: number; sessionId: string; reusableAt: number },
): Promise<void> {
  await tx.db
    .updateTable('status_list_slots')
    .set({ reusable_at: slot.reusableAt })
    .where('list_id', '=', slot.listId)
    .where('idx', '=', slot.idx)
    .where('session_id', '=', slot.sessionId)
    .execute();
}

/** Only the session's own slot: once reused, the same index belongs to another session. */
export async function setSlotStatus(
  tx: TxHandle,
  listId: number,
  idx: number,
  sessionId: string,
  status: number,
): Promise<void> {
  const changed = await tx.db
    .updateTable('status_list_slots')
    .set({ status })
    .where('list_id', '=', listId)
    .where('idx', '=', idx)
    .where('session_id', '=', sessionId)
    .where('status', '!=', status)
    .executeTakeFirst();
  if (Number(changed.numUpdatedRows) > 0) await bumpVersion(tx, listId);
}

/** What the published list encodes changed: its cached signed form is stale. */
async function bumpVersion(tx: TxHandle, listId: number): Promise<void> {
  await tx.db
    .updateTable('status_lists')
    .set((eb) => ({ version: eb('version', '+', 1) }))
    .where('id', '=', listId)
    .execute();
}

/** Indices of a list with a non-VALID status (what the published list encodes). */
export async function flaggedSlots(
  h: StoreHandle,
  listId: number,
): Promise<{ idx: number; status: number }[]> {
  return h.db
    .selectFrom('status_list_slots')
    .select(['idx', 'status'])
    .where('list_id', '=', listId)
    .where('status', '!=', 0)
    .execute();
}
