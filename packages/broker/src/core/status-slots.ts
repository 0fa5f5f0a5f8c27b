import { randomInt } from 'node:crypto';
import { TOKEN_STATUS } from '@tether-broker/protocol';
import type { TxHandle } from '../store/database.js';
import {
  createStatusList,
  deleteSlot,
  findSlot,
  insertSlot,
  lockListSlots,
  reclaimReusableSlots,
  setSlotStatus,
  tenantStatusLists,
} from '../store/repositories/status-lists.js';

/** Seconds of leeway after hard expiry before a status-list slot may be reused. */
export const SLOT_REUSE_MARGIN_MS = 5 * 60_000;

/** 65,536 one-bit entries: 8 KiB uncompressed, a few hundred bytes compressed. */
export const STATUS_LIST_SIZE = 65_536;
export const STATUS_LIST_BITS = 1;
/** A list is used until half full, so random probing stays cheap and occupancy stays hidden. */
const MAX_FILL = 0.5;
const PROBES = 32;

/**
 * Gives a session a random index in one of its tenant's status lists. Random indices mean a
 * list reveals nothing about how many sessions the tenant has had. A slot is reused only
 * after `reusable_at`: the moment no token naming it can still be valid.
 */
export async function allocateStatusSlot(
  tx: TxHandle,
  tenantId: string,
  sessionId: string,
  reusableAt: number,
  now: number,
): Promise<{ listId: number; idx: number }> {
  const lists = await tenantStatusLists(tx, tenantId);
  for (const list of lists.reverse()) {
    if (!(await hasRoom(tx, list.id, list.size, now))) continue;
    const idx = await probe(tx, list.id, list.size, now);
    if (idx !== undefined) {
      await insertSlot(tx, { listId: list.id, idx, tenantId, sessionId, reusableAt });
      return { listId: list.id, idx };
    }
  }
  const list = await createStatusList(tx, tenantId, STATUS_LIST_BITS, STATUS_LIST_SIZE, now);
  const idx = randomInt(list.size);
  await insertSlot(tx, { listId: list.id, idx, tenantId, sessionId, reusableAt });
  return { listId: list.id, idx };
}

/**
 * Whether a list holds fewer than its fill limit of live slots, read from its slot count (one
 * row, locked). The count includes slots past `reusable_at`; only when it reaches the limit are
 * those reclaimed, so the answer is the same as counting the live slots, at a cost that does not
 * grow with the list.
 */
async function hasRoom(tx: TxHandle, listId: number, size: number, now: number): Promise<boolean> {
  const limit = size * MAX_FILL;
  if ((await lockListSlots(tx, listId)) < limit) return true;
  return (await reclaimReusableSlots(tx, listId, now)) < limit;
}

async function probe(tx: TxHandle, listId: number, size: number, now: number): Promise<number | undefined> {
  for (let i = 0; i < PROBES; i++) {
    const idx = randomInt(size);
    const slot = await findSlot(tx, listId, idx);
    if (!slot) return idx;
    if (slot.reusable_at <= now) {
      await deleteSlot(tx, listId, idx);
      return idx;
    }
  }
  return undefined;
}

/** An ended session's entry reads INVALID until the slot is reused. */
export async function invalidateStatusSlot(
  tx: TxHandle,
  listId: number,
  idx: number,
  sessionId: string,
): Promise<void> {
  await setSlotStatus(tx, listId, idx, sessionId, TOKEN_STATUS.INVALID);
}
