import type { Stream } from '../../domain/ssf-stream.js';
import type { DeliveryMethod, StreamStatus } from '../../domain/ssf-vocabulary.js';
import type { StoreHandle, TxHandle } from '../database.js';
import { forUpdate } from '../locking.js';
import type { SsfStreamRow } from '../schema.js';
import { fromJson, toJson } from './json.js';

function toStream(row: SsfStreamRow): Stream {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    ownerId: row.owner_id,
    aud: fromJson<string[]>(row.aud),
    eventsRequested: fromJson<string[]>(row.events_requested),
    method: row.method as DeliveryMethod,
    endpointUrl: row.endpoint_url,
    hasAuthorization: row.authorization_enc !== null,
    description: row.description,
    status: row.status as StreamStatus,
    statusReason: row.status_reason,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Stores a new stream; its Authorization header arrives sealed: the plaintext never reaches the store. */
export async function insertStream(
  tx: TxHandle,
  s: Stream,
  sealedAuthorization: string | null,
): Promise<void> {
  await tx.db
    .insertInto('ssf_streams')
    .values({
      id: s.id,
      tenant_id: s.tenantId,
      owner_id: s.ownerId,
      aud: toJson(s.aud),
      events_requested: toJson(s.eventsRequested),
      method: s.method,
      endpoint_url: s.endpointUrl,
      authorization_enc: sealedAuthorization,
      description: s.description,
      status: s.status,
      status_reason: s.statusReason,
      last_seq: 0,
      next_attempt_at: s.createdAt,
      lease_token: null,
      created_by: s.createdBy,
      created_at: s.createdAt,
      updated_at: s.updatedAt,
    })
    .execute();
}

export async function findStream(h: StoreHandle, tenantId: string, id: string): Promise<Stream | undefined> {
  const row = await h.db
    .selectFrom('ssf_streams')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toStream(row);
}

/** The stream, locked until the transaction ends: changes to one stream are serialised. */
export async function lockStream(tx: TxHandle, tenantId: string, id: string): Promise<Stream | undefined> {
  const row = await forUpdate(
    tx,
    tx.db.selectFrom('ssf_streams').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id),
  ).executeTakeFirst();
  return row && toStream(row);
}

/** The tenant's streams, oldest first; only `ownerId`'s when given. */
export async function listStreams(h: StoreHandle, tenantId: string, ownerId?: string): Promise<Stream[]> {
  let query = h.db.selectFrom('ssf_streams').selectAll().where('tenant_id', '=', tenantId);
  if (ownerId !== undefined) query = query.where('owner_id', '=', ownerId);
  const rows = await query.orderBy('created_at').orderBy('id').execute();
  return rows.map(toStream);
}

/**
 * Writes a stream's receiver-supplied settings; `sealedAuthorization` undefined leaves the
 * stored header as it is. A stream waiting out a backoff is tried again at once (the receiver
 * may just have fixed its endpoint), unless a push is in flight.
 */
export async function writeStreamSettings(
  tx: TxHandle,
  s: Stream,
  sealedAuthorization: string | null | undefined,
  now: number,
): Promise<void> {
  await tx.db
    .updateTable('ssf_streams')
    .set((eb) => ({
      events_requested: toJson(s.eventsRequested),
      method: s.method,
      endpoint_url: s.endpointUrl,
      ...(sealedAuthorization === undefined ? {} : { authorization_enc: sealedAuthorization }),
      description: s.description,
      updated_at: now,
      next_attempt_at: eb
        .case()
        .when('lease_token', 'is', null)
        .then(now)
        .else(eb.ref('next_attempt_at'))
        .end(),
    }))
    .where('id', '=', s.id)
    .execute();
}

/** Sets the status; enabling a stream makes its held events due at once (unless a push is in flight). */
export async function writeStreamStatus(
  tx: TxHandle,
  id: string,
  status: StreamStatus,
  reason: string | null,
  now: number,
): Promise<void> {
  await tx.db
    .updateTable('ssf_streams')
    .set((eb) => ({
      status,
      status_reason: reason,
      updated_at: now,
      next_attempt_at: eb
        .case()
        .when('lease_token', 'is', null)
        .then(now)
        .else(eb.ref('next_attempt_at'))
        .end(),
    }))
    .where('id', '=', id)
    .execute();
}

/** The sealed Authorization header of a push stream, for the delivery worker alone. */
export async function readSealedAuthorization(h: StoreHandle, id: string): Promise<string | null> {
  const row = await h.db
    .selectFrom('ssf_streams')
    .select('authorization_enc')
    .where('id', '=', id)
    .executeTakeFirst();
  return row?.authorization_enc ?? null;
}

/** Removes a stream and every event still waiting on it. */
export async function deleteStream(tx: TxHandle, tenantId: string, id: string): Promise<boolean> {
  await tx.db.deleteFrom('ssf_outbox').where('stream_id', '=', id).execute();
  const result = await tx.db
    .deleteFrom('ssf_streams')
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}

/** The tenant's streams that hold or send events (not disabled), in id order (the order their rows are locked in). */
export async function listOpenStreams(
  tx: TxHandle,
  tenantId: string,
): Promise<Pick<Stream, 'id' | 'status' | 'eventsRequested'>[]> {
  const rows = await tx.db
    .selectFrom('ssf_streams')
    .select(['id', 'status', 'events_requested'])
    .where('tenant_id', '=', tenantId)
    .where('status', '!=', 'disabled')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    status: r.status as StreamStatus,
    eventsRequested: fromJson<string[]>(r.events_requested),
  }));
}

/**
 * Takes the stream's next outbox position, in one statement that locks the stream row until
 * the transaction ends: a stream's events commit in the order of their positions. Undefined
 * when the stream was deleted or disabled since it was listed (a concurrent change that
 * committed first): then nothing is to be queued on it.
 */
export async function takeOutboxSeq(tx: TxHandle, streamId: string): Promise<number | undefined> {
  const row = await tx.db
    .updateTable('ssf_streams')
    .set((eb) => ({ last_seq: eb('last_seq', '+', 1) }))
    .where('id', '=', streamId)
    .where('status', '!=', 'disabled')
    .returning('last_seq')
    .executeTakeFirst();
  return row?.last_seq;
}

/** A stream by id alone: for the delivery worker, which serves every tenant. */
export async function findStreamById(h: StoreHandle, id: string): Promise<Stream | undefined> {
  const row = await h.db.selectFrom('ssf_streams').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toStream(row);
}
