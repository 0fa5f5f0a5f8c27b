import type { SetKind } from '../../domain/ssf-vocabulary.js';
import type { StoreHandle, TxHandle } from '../database.js';
import type { SsfOutboxRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

/** One SET waiting on a stream, at its position. */
export interface OutboxEntry {
  streamId: string;
  seq: number;
  tenantId: string;
  jti: string;
  kind: SetKind;
  facts: Record<string, unknown>;
  /** The SET's claims once it has been sent (or polled) for the first time; then they never change. */
  claims: Record<string, unknown> | null;
  createdAt: number;
  attempts: number;
  lastError: string | null;
}

function toEntry(row: SsfOutboxRow): OutboxEntry {
  return {
    streamId: row.stream_id,
    seq: row.seq,
    tenantId: row.tenant_id,
    jti: row.jti,
    kind: row.kind as SetKind,
    facts: fromJson<Record<string, unknown>>(row.facts),
    claims: row.set_claims === null ? null : fromJson<Record<string, unknown>>(row.set_claims),
    createdAt: row.created_at,
    attempts: row.attempts,
    lastError: row.last_error,
  };
}

export async function insertOutboxEntry(
  tx: TxHandle,
  e: Pick<OutboxEntry, 'streamId' | 'seq' | 'tenantId' | 'jti' | 'kind' | 'facts' | 'createdAt'>,
): Promise<void> {
  await tx.db
    .insertInto('ssf_outbox')
    .values({
      stream_id: e.streamId,
      seq: e.seq,
      tenant_id: e.tenantId,
      jti: e.jti,
      kind: e.kind,
      facts: toJson(e.facts),
      set_claims: null,
      created_at: e.createdAt,
      attempts: 0,
      last_error: null,
    })
    .execute();
}

/** The oldest `limit` entries of a stream, in delivery order. */
export async function listOutbox(h: StoreHandle, streamId: string, limit: number): Promise<OutboxEntry[]> {
  const rows = await h.db
    .selectFrom('ssf_outbox')
    .selectAll()
    .where('stream_id', '=', streamId)
    .orderBy('seq')
    .limit(limit)
    .execute();
  return rows.map(toEntry);
}

/** How many entries wait on a stream. */
export async function countOutbox(h: StoreHandle, streamId: string): Promise<number> {
  const row = await h.db
    .selectFrom('ssf_outbox')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('stream_id', '=', streamId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Fixes the claims an entry's SET carries, the first time it is built. */
export async function writeOutboxClaims(
  tx: TxHandle,
  streamId: string,
  seq: number,
  claims: Record<string, unknown>,
): Promise<void> {
  await tx.db
    .updateTable('ssf_outbox')
    .set({ set_claims: toJson(claims) })
    .where('stream_id', '=', streamId)
    .where('seq', '=', seq)
    .execute();
}

/** Removes a delivered (or refused) entry; false when it was already gone. */
export async function deleteOutboxEntry(tx: TxHandle, streamId: string, seq: number): Promise<boolean> {
  const result = await tx.db
    .deleteFrom('ssf_outbox')
    .where('stream_id', '=', streamId)
    .where('seq', '=', seq)
    .executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}

/** Removes the entries a poll acknowledged; answers the ones that were there. */
export async function deleteOutboxByJti(
  tx: TxHandle,
  streamId: string,
  jtis: string[],
): Promise<OutboxEntry[]> {
  if (jtis.length === 0) return [];
  const rows = await tx.db
    .deleteFrom('ssf_outbox')
    .where('stream_id', '=', streamId)
    .where('jti', 'in', jtis)
    .returningAll()
    .execute();
  return rows.map(toEntry);
}

/** Records a failed push of an entry. */
export async function writeOutboxFailure(
  tx: TxHandle,
  streamId: string,
  seq: number,
  attempts: number,
  error: string,
): Promise<void> {
  await tx.db
    .updateTable('ssf_outbox')
    .set({ attempts, last_error: error })
    .where('stream_id', '=', streamId)
    .where('seq', '=', seq)
    .execute();
}

/** Drops everything a stream holds (it was disabled: SSF says a disabled stream holds nothing). */
export async function clearOutbox(tx: TxHandle, streamId: string): Promise<number> {
  const result = await tx.db.deleteFrom('ssf_outbox').where('stream_id', '=', streamId).executeTakeFirst();
  return Number(result.numDeletedRows);
}
