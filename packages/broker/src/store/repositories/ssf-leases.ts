import type { StoreHandle, TxHandle } from '../database.js';

/**
 * Leases on push streams. A replica that sends a stream's head holds the stream's lease:
 * `lease_token` is its own random value and `next_attempt_at` the lease's end. Only the
 * holder of a live lease sends on a stream, so a stream's events go out one at a time, in
 * order, whatever the number of replicas; a replica that dies mid-send loses the lease when
 * it runs out, and another one sends the head again (at-least-once delivery).
 */

/** Push streams that are enabled, due, not leased, and have something to send. */
export async function listDueStreams(h: StoreHandle, now: number, limit: number): Promise<string[]> {
  const rows = await h.db
    .selectFrom('ssf_streams as s')
    .select('s.id')
    .where('s.method', '=', 'push')
    .where('s.status', '=', 'enabled')
    .where('s.next_attempt_at', '<=', now)
    .where(({ exists, selectFrom }) =>
      exists(selectFrom('ssf_outbox as o').select('o.seq').whereRef('o.stream_id', '=', 's.id')),
    )
    .orderBy('s.next_attempt_at')
    .limit(limit)
    .execute();
  return rows.map((r) => r.id);
}

/**
 * Takes the lease of a due push stream until `until`; answers false when the stream is not
 * enabled, not due, already leased, or (PostgreSQL) locked by another replica at this very
 * moment: `SKIP LOCKED` moves on instead of waiting.
 */
export async function takeLease(
  tx: TxHandle,
  streamId: string,
  now: number,
  until: number,
  token: string,
): Promise<boolean> {
  let query = tx.db
    .selectFrom('ssf_streams')
    .select(['status', 'method', 'next_attempt_at'])
    .where('id', '=', streamId);
  if (tx.dialect === 'postgres') query = query.forUpdate().skipLocked();
  const row = await query.executeTakeFirst();
  if (row?.method !== 'push' || row.status !== 'enabled' || row.next_attempt_at > now) return false;
  await tx.db
    .updateTable('ssf_streams')
    .set({ lease_token: token, next_attempt_at: until })
    .where('id', '=', streamId)
    .execute();
  return true;
}

/**
 * Gives the lease back and schedules the stream's next attempt. False when the lease is no
 * longer ours (it ran out and was taken, or the stream changed or went away): then nothing
 * is written.
 */
export async function releaseLease(
  tx: TxHandle,
  streamId: string,
  token: string,
  nextAttemptAt: number,
): Promise<boolean> {
  const result = await tx.db
    .updateTable('ssf_streams')
    .set({ lease_token: null, next_attempt_at: nextAttemptAt })
    .where('id', '=', streamId)
    .where('lease_token', '=', token)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}
