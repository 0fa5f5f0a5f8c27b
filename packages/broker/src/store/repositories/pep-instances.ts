import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';

/** One running process of a PEP principal, as its acks describe it. */
export interface PepInstanceState {
  principalId: string;
  instanceId: string;
  lastAppliedSeq: number;
  lastSeenAt: number;
}

/**
 * Reads an instance's row and locks it until the transaction ends, creating it (as having
 * applied nothing) on its first ack. The insert does nothing when the row exists.
 */
export async function lockOrCreatePepInstance(
  tx: TxHandle,
  tenantId: string,
  principalId: string,
  instanceId: string,
  now: number,
): Promise<PepInstanceState> {
  await tx.db
    .insertInto('pep_instances')
    .values({
      tenant_id: tenantId,
      principal_id: principalId,
      instance_id: instanceId,
      last_applied_seq: 0,
      last_seen_at: now,
      created_at: now,
    })
    .onConflict((oc) => oc.columns(['principal_id', 'instance_id']).doNothing())
    .execute();
  const row = await forUpdate(
    tx,
    tx.db
      .selectFrom('pep_instances')
      .selectAll()
      .where('principal_id', '=', principalId)
      .where('instance_id', '=', instanceId),
  ).executeTakeFirstOrThrow();
  return {
    principalId: row.principal_id,
    instanceId: row.instance_id,
    lastAppliedSeq: Number(row.last_applied_seq),
    lastSeenAt: Number(row.last_seen_at),
  };
}

/**
 * Records an instance's ack: its position (made monotonic by the caller) and when, plus the
 * ack history row when the position moved forward.
 */
export async function writePepInstanceProgress(
  tx: TxHandle,
  tenantId: string,
  before: PepInstanceState,
  applied: number,
  now: number,
): Promise<void> {
  await tx.db
    .updateTable('pep_instances')
    .set({ last_applied_seq: applied, last_seen_at: now })
    .where('principal_id', '=', before.principalId)
    .where('instance_id', '=', before.instanceId)
    .execute();
  if (applied > before.lastAppliedSeq)
    await tx.db
      .insertInto('pep_instance_acks')
      .values({
        tenant_id: tenantId,
        principal_id: before.principalId,
        instance_id: before.instanceId,
        seq: applied,
        at: now,
      })
      .execute();
}

/** Forgets an instance (it stopped): receipts no longer wait for it. Its ack history stays until pruned. */
export async function deletePepInstance(
  tx: TxHandle,
  principalId: string,
  instanceId: string,
): Promise<void> {
  await tx.db
    .deleteFrom('pep_instances')
    .where('principal_id', '=', principalId)
    .where('instance_id', '=', instanceId)
    .execute();
}

/** A live instance in a receipt. */
export interface PepInstanceEnforcement {
  principalId: string;
  instanceId: string;
  lastAppliedSeq: number;
  lastSeenAt: number;
  /** When its first ack with `seq >= n` arrived; null without `n`, or when none is kept. */
  enforcedAt: number | null;
}

/**
 * The tenant's instances heard from at or after `since` (the live ones), by principal and
 * instance id, with the time each first acknowledged position `seq` (when given).
 */
export async function listLivePepInstances(
  h: StoreHandle,
  tenantId: string,
  since: number,
  seq: number | null,
): Promise<PepInstanceEnforcement[]> {
  const rows = await h.db
    .selectFrom('pep_instances as i')
    .select(['i.principal_id', 'i.instance_id', 'i.last_applied_seq', 'i.last_seen_at'])
    .select((eb) =>
      eb
        .selectFrom('pep_instance_acks as a')
        .select('a.at')
        .whereRef('a.principal_id', '=', 'i.principal_id')
        .whereRef('a.instance_id', '=', 'i.instance_id')
        // Without a position there is nothing to look up: no ack is that far.
        .where('a.seq', '>=', seq ?? Number.MAX_SAFE_INTEGER)
        .orderBy('a.seq')
        .limit(1)
        .as('enforced_at'),
    )
    .where('i.tenant_id', '=', tenantId)
    .where('i.last_seen_at', '>=', since)
    .orderBy('i.principal_id')
    .orderBy('i.instance_id')
    .execute();
  return rows.map((r) => ({
    principalId: r.principal_id,
    instanceId: r.instance_id,
    lastAppliedSeq: Number(r.last_applied_seq),
    lastSeenAt: Number(r.last_seen_at),
    // The scalar subquery comes back as a string from some drivers.
    enforcedAt: r.enforced_at === null || r.enforced_at === undefined ? null : Number(r.enforced_at),
  }));
}

/**
 * Deletes instance ack history older than `before`, and instances not heard from since then
 * (every restart of a PEP leaves one behind). Answers how many rows went.
 */
export async function deletePepInstancesBefore(h: StoreHandle, before: number): Promise<number> {
  const acks = await h.db.deleteFrom('pep_instance_acks').where('at', '<', before).executeTakeFirst();
  const instances = await h.db
    .deleteFrom('pep_instances')
    .where('last_seen_at', '<', before)
    .executeTakeFirst();
  return Number(acks.numDeletedRows) + Number(instances.numDeletedRows);
}
