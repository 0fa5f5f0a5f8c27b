import { afterAll, expect, it } from 'vitest';
import { describeEachStore } from '../../../../test/support/stores.js';
import { inTransaction, type Store } from '../store/database.js';
import { findStatusList, tenantStatusLists } from '../store/repositories/status-lists.js';
import { insertTenant } from '../store/repositories/tenants.js';
import { allocateStatusSlot, invalidateStatusSlot, STATUS_LIST_SIZE } from './status-slots.js';

const TENANT = 'ten_0000000000000000000000000a';
const NOW = 1_700_000_000_000;
const LIMIT = STATUS_LIST_SIZE / 2;

async function storeWithTenant(open: () => Promise<Store>): Promise<Store> {
  const store = await open();
  await insertTenant(store, {
    id: TENANT,
    name: 'acme',
    displayName: 'Acme',
    timeZone: 'UTC',
    createdAt: 1,
    kind: 'standalone',
    providerTenantId: null,
  });
  return store;
}

const allocate = (store: Store, sessionId: string, reusableAt = NOW + 3_600_000, now = NOW) =>
  inTransaction(store, (tx) => allocateStatusSlot(tx, TENANT, sessionId, reusableAt, now));

/** The rows a list really holds, to check its kept count against. */
async function rowCount(store: Store, listId: number): Promise<number> {
  const row = await store.db
    .selectFrom('status_list_slots')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('list_id', '=', listId)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/**
 * Fills a list up to its fill limit with slots outside the allocator (quicker than 32,768
 * activations), every index but those the allocator already took; `expired` of them past
 * `reusable_at`, the first `flagged` of those INVALID.
 */
async function fillToLimit(store: Store, listId: number, expired: number, flagged: number): Promise<void> {
  const taken = new Set(
    (
      await store.db.selectFrom('status_list_slots').select('idx').where('list_id', '=', listId).execute()
    ).map((r) => r.idx),
  );
  const rows = [];
  for (let idx = 0; rows.length + taken.size < LIMIT; idx++) {
    if (taken.has(idx)) continue;
    const n = rows.length;
    rows.push({
      list_id: listId,
      idx,
      tenant_id: TENANT,
      session_id: `ses_fill_${idx}`,
      status: n < flagged ? 1 : 0,
      reusable_at: n < expired ? NOW - 1 : NOW + 3_600_000,
    });
  }
  for (let i = 0; i < rows.length; i += 500)
    await store.db
      .insertInto('status_list_slots')
      .values(rows.slice(i, i + 500))
      .execute();
  await store.db.updateTable('status_lists').set({ slots: LIMIT }).where('id', '=', listId).execute();
}

describeEachStore('status-list slot allocation', (fixture) => {
  afterAll(() => fixture.cleanup());

  it('keeps each list’s slot count with its rows, through allocation and reuse', async () => {
    const store = await storeWithTenant(() => fixture.open());
    const first = await allocate(store, 'ses_1');
    for (let i = 2; i <= 20; i++) await allocate(store, `ses_${i}`);
    const list = await findStatusList(store, first.listId);
    expect(list).toBeDefined();
    const kept = await store.db
      .selectFrom('status_lists')
      .select('slots')
      .where('id', '=', first.listId)
      .executeTakeFirst();
    expect(Number(kept?.slots)).toBe(20);
    expect(await rowCount(store, first.listId)).toBe(20);
  });

  it('opens a new list when a list holds its fill limit of live slots', async () => {
    const store = await storeWithTenant(() => fixture.open());
    const first = await allocate(store, 'ses_first');
    await fillToLimit(store, first.listId, 0, 0);
    const next = await allocate(store, 'ses_next');
    expect(next.listId).not.toBe(first.listId);
    expect((await tenantStatusLists(store, TENANT)).length).toBe(2);
    expect(await rowCount(store, first.listId)).toBe(LIMIT);
  });

  it('reclaims slots past reusable_at when the count reaches the limit, and re-signs if a bit cleared', async () => {
    const store = await storeWithTenant(() => fixture.open());
    const first = await allocate(store, 'ses_first');
    await inTransaction(store, (tx) => invalidateStatusSlot(tx, first.listId, first.idx, 'ses_first'));
    await fillToLimit(store, first.listId, 100, 3);
    const versionBefore = (await findStatusList(store, first.listId))?.version ?? -1;
    const next = await allocate(store, 'ses_next');
    expect(next.listId).toBe(first.listId);
    expect((await tenantStatusLists(store, TENANT)).length).toBe(1);
    const after = await store.db
      .selectFrom('status_lists')
      .selectAll()
      .where('id', '=', first.listId)
      .executeTakeFirst();
    expect(Number(after?.slots)).toBe(LIMIT - 100 + 1);
    expect(await rowCount(store, first.listId)).toBe(LIMIT - 100 + 1);
    // Three INVALID entries went: what the published list encodes changed.
    expect(Number(after?.version)).toBeGreaterThan(versionBefore);
    // The session's own INVALID entry, still live, stays.
    const own = await store.db
      .selectFrom('status_list_slots')
      .select('status')
      .where('list_id', '=', first.listId)
      .where('idx', '=', first.idx)
      .executeTakeFirst();
    expect(own?.status).toBe(1);
  });
});
