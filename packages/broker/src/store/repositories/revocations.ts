import type { StoreHandle, TxHandle } from '../database.js';
import type { RevocationEventRow } from '../schema.js';

/**
 * Takes the tenant's next sequence number: creates the head row at 1 or increments it, in one
 * statement. The statement locks the head row until the transaction ends (both dialects), so
 * events of one tenant commit in sequence order; see migrations/0004-revocation-log.ts.
 */
export async function takeRevocationSeq(tx: TxHandle, tenantId: string): Promise<number> {
  const head = await tx.db
    .insertInto('revocation_heads')
    .values({ tenant_id: tenantId, seq: 1 })
    .onConflict((oc) =>
      oc.column('tenant_id').doUpdateSet((eb) => ({ seq: eb('revocation_heads.seq', '+', 1) })),
    )
    .returning('seq')
    .executeTakeFirstOrThrow();
  return head.seq;
}

/** Takes `count` consecutive sequence numbers in one statement; answers the first. Locks as above. */
export async function takeRevocationSeqs(tx: TxHandle, tenantId: string, count: number): Promise<number> {
  const head = await tx.db
    .insertInto('revocation_heads')
    .values({ tenant_id: tenantId, seq: count })
    .onConflict((oc) =>
      oc.column('tenant_id').doUpdateSet((eb) => ({ seq: eb('revocation_heads.seq', '+', count) })),
    )
    .returning('seq')
    .executeTakeFirstOrThrow();
  return head.seq - count + 1;
}

/** Inserts events already numbered, a few hundred rows per statement. */
export async function insertRevocationEvents(
  tx: TxHandle,
  rows: readonly RevocationEventRow[],
): Promise<void> {
  for (let i = 0; i < rows.length; i += 500)
    await tx.db
      .insertInto('revocation_events')
      .values(rows.slice(i, i + 500))
      .execute();
}

export async function insertRevocationEvent(tx: TxHandle, row: RevocationEventRow): Promise<void> {
  await tx.db.insertInto('revocation_events').values(row).execute();
}

/** The newest committed sequence number of the tenant's log; 0 when it has none. */
export async function readRevocationHead(h: StoreHandle, tenantId: string): Promise<number> {
  const row = await h.db
    .selectFrom('revocation_heads')
    .select('seq')
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  return row?.seq ?? 0;
}

/** Up to `limit` events after `afterSeq`, in sequence order. */
export async function listRevocationEvents(
  h: StoreHandle,
  tenantId: string,
  afterSeq: number,
  limit: number,
): Promise<RevocationEventRow[]> {
  return h.db
    .selectFrom('revocation_events')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();
}

/** Every tenant id, in a fixed order (so that transactions touching all of them lock alike). */
export async function listTenantIds(h: StoreHandle): Promise<string[]> {
  const rows = await h.db.selectFrom('tenants').select('id').orderBy('id').execute();
  return rows.map((r) => r.id);
}
