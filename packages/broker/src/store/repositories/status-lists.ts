import { randomInt } from 'node:crypto';
import { sql } from 'kysely';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';

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
      .values({ id, tenant_id: tenantId, bits, size, created_at: at, version: 0, slots: 0 })
      .execute();
    return { id, tenantId, bits, size, version: 0 };
  }
}

/**
 * Locks the list's row (the allocations of one list run one after the other) and answers how
 * many slots it holds, counted as they were inserted and deleted: a read of one row, however
 * many sessions the list serves. Slots past `reusable_at` still count until reclaimed.
 */
export async function lockListSlots(tx: TxHandle, listId: number): Promise<number> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('status_lists').select('slots').where('id', '=', listId),
  ).executeTakeFirst();
  return Number(row?.slots ?? 0);
}

/**
 * Deletes the list's slots past `reusable_at` (no token naming them can still be valid) and
 * answers how many slots it still holds. An index on (`list_id`, `reusable_at`) finds them
 * without a scan, so a full list with nothing to reclaim costs one index probe. The caller
 * holds the list's lock ({@link lockListSlots}).
 */
export async function reclaimReusableSlots(tx: TxHandle, listId: number, now: number): Promise<number> {
  const gone = await tx.db
    .deleteFrom('status_list_slots')
    .where('list_id', '=', listId)
    .where('reusable_at', '<=', now)
    .returning('status')
    .execute();
  if (gone.length > 0)
    await slotsRemoved(
      tx,
      listId,
      gone.length,
      gone.some((g) => g.status !== 0),
    );
  return lockListSlots(tx, listId);
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
  if (gone) await slotsRemoved(tx, listId, 1, gone.status !== 0);
}

/** Keeps the list's slot count; a flagged entry's bit clears when its slot goes, so it re-signs. */
async function slotsRemoved(tx: TxHandle, listId: number, count: number, flagged: boolean): Promise<void> {
  await tx.db
    .updateTable('status_lists')
    .set((eb) => ({
      slots: eb('slots', '-', count),
      ...(flagged ? { version: eb('version', '+', 1) } : {}),
    }))
    .where('id', '=', listId)
    .execute();
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
  await tx.db
    .updateTable('status_lists')
    .set((eb) => ({ slots: eb('slots', '+', 1) }))
    .where('id', '=', slot.listId)
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

/**
 * Indices of a list with a non-VALID status (what the published list encodes). The condition is
 * written as a literal, the very predicate of the partial index `status_list_slots_flagged`
 * (0031): a bound parameter would keep either database from using that index.
 */
export async function flaggedSlots(
  h: StoreHandle,
  listId: number,
): Promise<{ idx: number; status: number }[]> {
  return h.db
    .selectFrom('status_list_slots')
    .select(['idx', 'status'])
    .where('list_id', '=', listId)
    .where(sql<boolean>`status <> 0`)
    .execute();
}
